"""API clients: who may call the service, with which permissions, on which apps.

Secrets are kept only as SHA-256 digests (they are high-entropy, so a plain hash is enough)
and compared in constant time. The registry holds no clear secret; the file format, loading
and the operators' CLI are in clients_file.py.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

SECRET_PREFIX = "tkc_"  # recognisable by secret scanners, like the tokens' ``tks_``
SECRET_BYTES = 32
# Compared against when a client id is unknown, so that unknown and known ids cost the same.
_NO_DIGEST = bytes(32)


class Permission(enum.StrEnum):
    INTROSPECT = "introspect"
    ISSUE = "issue"
    READ = "read"
    REVOKE = "revoke"
    ADMIN = "admin"  # every other permission, and revoking a whole app


@dataclass(frozen=True, slots=True)
class ApiClient:
    id: str
    secret_digest: bytes = field(repr=False)
    permissions: frozenset[Permission]
    apps: frozenset[str] | None  # None: every app ("*")

    def may(self, permission: Permission) -> bool:
        return grants(self.permissions, permission)


def grants(permissions: frozenset[Permission], permission: Permission) -> bool:
    return Permission.ADMIN in permissions or permission in permissions


def hash_secret(secret: str) -> bytes:
    # surrogatepass: a header that is not valid UTF-8 hashes to something no client has.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


class ClientRegistry:
    """Clients by id (Basic credentials) and by secret digest (Bearer and bare secrets)."""

    def __init__(self, clients: Iterable[ApiClient]) -> None:
        self._by_id: dict[str, ApiClient] = {}
        self._by_digest: dict[bytes, ApiClient] = {}
        for client in clients:
            if client.id in self._by_id or client.secret_digest in self._by_digest:
                raise ValueError(f"client {client.id!r}: duplicate id or secret")
            self._by_id[client.id] = client
            self._by_digest[client.secret_digest] = client

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, client_id: str | None, secret: str) -> ApiClient | None:
        """The client these credentials name, if the secret is its own; ``client_id`` None:
        find the client by its secret alone."""
        digest = hash_secret(secret)
        client = self._by_digest.get(digest) if client_id is None else self._by_id.get(client_id)
        expected = _NO_DIGEST if client is None else client.secret_digest
        matched = hmac.compare_digest(expected, digest)
        return client if matched and client is not None else None
