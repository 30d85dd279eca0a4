"""The identity of a token as HTTP headers: what ``/v1/authz`` answers and gateways forward.

Both ends of the contract live here: the service writes these headers, ``service.client``
reads them back. User and app ids may be any Unicode, but a header value must be printable
ASCII, so values are percent-encoded UTF-8: every byte outside ``!``..``~`` (controls, space,
non-ASCII) and ``%`` itself. ``urllib.parse.unquote`` restores the id; an id of plain ASCII
without spaces or ``%`` travels unchanged.
"""

from __future__ import annotations

import re
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


_HEX = "[0-9A-Fa-f]"
_CONT = f"%[89ABab]{_HEX}"  # a UTF-8 continuation byte, 80-BF
# What encode_header writes: characters other than "%", and "%XX" escapes that spell UTF-8
# (RFC 3629's byte sequences: no overlong forms, no surrogates, nothing past U+10FFFF).
PERCENT_ENCODED_PATTERN = (
    f"(?:[^%]|%[0-7]{_HEX}"
    f"|%[Cc][2-9A-Fa-f]{_CONT}|%[Dd]{_HEX}{_CONT}"
    f"|%[Ee]0%[ABab]{_HEX}{_CONT}|%[Ee][1-9A-Ca-c]{_CONT}{_CONT}"
    f"|%[Ee][Dd]%[89]{_HEX}{_CONT}|%[Ee][EFef]{_CONT}{_CONT}"
    f"|%[Ff]0%[9ABab]{_HEX}{_CONT}{_CONT}|%[Ff][1-3]{_CONT}{_CONT}{_CONT}"
    f"|%[Ff]4%8{_HEX}{_CONT}{_CONT})*"
)
_PERCENT_ENCODED_RE = re.compile(PERCENT_ENCODED_PATTERN)


def decode_header(value: str) -> str:
    """The id ``encode_header`` wrote; ValueError if ``value`` is not such an encoding (a
    stray "%" included: the encoder escapes every "%")."""
    if _PERCENT_ENCODED_RE.fullmatch(value) is None:
        raise ValueError("not percent-encoded UTF-8")
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
