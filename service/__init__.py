"""tokenstore: a token registry and revocation service on Redis."""

__version__ = "0.1.0"
