"""The identity of a token as HTTP headers: what ``/v1/authz`` answers and gateways forward.

Both ends of the contract live here: the service writes these headers, ``service.client``
reads them back. User and app ids may be any Unicode, but a header value must be printable
ASCII, so values are percent-encoded UTF-8: every byte outside ``!``..``~`` (controls, space,
non-ASCII) and ``%`` itself. ``urllib.parse.unquote`` restores the id; an id of plain ASCII
without spaces or ``%`` travels unchanged.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

TOKEN_ID = "X-Token-Id"
USER = "X-Token-User"
APP = "X-Token-App"
SCOPES = "X-Token-Scopes"
EXPIRES = "X-Token-Expires"
HEADERS = (TOKEN_ID, USER, APP, SCOPES, EXPIRES)

_SAFE = "".join(c for c in string.punctuation if c != "%")


def encode_header(value: str) -> str:
    return quote(value, safe=_SAFE)


def decode_header(value: str) -> str:
    return unquote(value, errors="strict")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a live token belongs to: the answer of a successful check."""

    token_id: str
    user_id: str
    app_id: str
    scopes: tuple[str, ...]
    expires_at: int  # epoch ms

    def has_scopes(self, required: Iterable[str]) -> bool:
        return set(required) <= set(self.scopes)

    def headers(self) -> dict[str, str]:
        # RFC 6749 scope tokens are printable ASCII without spaces: joined as they are.
        return {
            TOKEN_ID: self.token_id,
            USER: encode_header(self.user_id),
            APP: encode_header(self.app_id),
            SCOPES: " ".join(self.scopes),
            EXPIRES: str(self.expires_at),
        }

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Identity:
        """The identity in a 200 answer of ``/v1/authz``; ValueError if a header is missing."""
        try:
            return cls(
                token_id=headers[TOKEN_ID],
                user_id=decode_header(headers[USER]),
                app_id=decode_header(headers[APP]),
                scopes=tuple(headers[SCOPES].split()),
                expires_at=int(headers[EXPIRES]),
            )
        except (KeyError, UnicodeDecodeError) as exc:
            raise ValueError(f"not an identity answer: {exc!r}") from None


def bearer_token(value: str, *, bare_allowed: bool = False) -> str | None:
    """The token in ``Bearer <token>`` (RFC 6750 section 2.1), or None.

    ``bare_allowed`` also accepts the token alone, as proxies that forward an access token in
    a header of their own send it (e.g. ``X-Forwarded-Access-Token``).
    """
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        token = token.strip()
    elif bare_allowed and not token:
        token = scheme
    else:
        return None
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        return None
    return token
