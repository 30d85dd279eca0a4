"""The format of minted tokens and public token ids.

A minted token is ``tks_<tag>_<rid>_<secret><crc>``:
- ``tag``: 16 hex characters of a keyed hash of the user id. It names the user's Redis hash
  tag, so a token routes to its user's slot without a lookup, and reveals nothing of the user;
- ``rid``: 16 random hex characters naming the record among the user's tokens;
- ``secret``: 52 base32 characters (256 random bits);
- ``crc``: 7 base32 characters of CRC-32 over everything before it, so mistyped, truncated and
  forged values are refused without a Redis call, and secret scanners can recognise a leak.

The public id of a token is ``tag + rid`` written as a UUID (the systems we are compatible with
type token ids as UUIDs): self-routing as well, never secret. Its version bits are not set.
Redis only ever holds SHA-256 digests of token values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import zlib
from typing import NamedTuple

PREFIX = "tks_"
TAG_CHARS = 16
SECRET_BYTES = 32
_B32 = "a-z2-7"
_ID_RE = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What parse_id accepts (it lowercases first), as the OpenAPI document writes it.
ID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_TOKEN_RE = re.compile(f"{PREFIX}([0-9a-f]{{16}})_([0-9a-f]{{16}})_[{_B32}]{{52}}([{_B32}]{{7}})")
MAX_TOKEN_CHARS = 4096


class TokenId(NamedTuple):
    tag: str
    rid: str

    def __str__(self) -> str:
        t, r = self.tag, self.rid
        return f"{t[:8]}-{t[8:12]}-{t[12:]}-{r[:4]}-{r[4:]}"


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def user_tag(tag_key: bytes, user_id: str) -> str:
    return hmac.new(tag_key, user_id.encode(), hashlib.sha256).digest()[:8].hex()


def new_id(tag: str) -> TokenId:
    return TokenId(tag, secrets.token_hex(8))


_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _checksum(body: str) -> str:
    """b32() of the 4 bytes of CRC-32: 32 bits and 3 zero bits of padding, 7 characters."""
    bits = zlib.crc32(body.encode("ascii")) << 3
    return "".join([_B32_ALPHABET[(bits >> shift) & 31] for shift in (30, 25, 20, 15, 10, 5, 0)])


def mint(tid: TokenId) -> str:
    body = f"{PREFIX}{tid.tag}_{tid.rid}_{b32(secrets.token_bytes(SECRET_BYTES))}"
    return body + _checksum(body)


def looks_minted(value: str) -> bool:
    """True for anything in our own namespace, valid or not: such values are never registered."""
    return value.startswith(PREFIX)


def parse_minted(value: str) -> TokenId | None:
    match = _TOKEN_RE.fullmatch(value)
    if match is None or _checksum(value[:-7]) != match.group(3):
        return None
    return TokenId(match.group(1), match.group(2))


def parse_id(value: str) -> TokenId | None:
    value = value.lower()
    if _ID_RE.fullmatch(value) is None:
        return None
    plain = value.replace("-", "")
    return TokenId(plain[:TAG_CHARS], plain[TAG_CHARS:])


def digest(value: str) -> bytes:
    """The first 128 bits of SHA-256: as hard to invert as the 256-bit secret needs, and short
    enough to keep a token hash in a smaller allocation (bench/README.md, memory levers)."""
    return hashlib.sha256(value.encode()).digest()[:16]


def new_tag_key() -> bytes:
    return secrets.token_bytes(32)
