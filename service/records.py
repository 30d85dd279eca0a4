"""Token records and their compact encoding as Redis hash fields.

Field names are one or two letters and empty fields are left out: a token hash whose values
stay under 64 bytes keeps Redis's compact listpack encoding (see README, memory).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import orjson

from service.tokens import TokenId

# ``ct`` (microseconds) and ``ex`` (ms) come from Redis's own clock.
USER, APP, TYPE, SCOPES, CLIENT, DEVICE, META = "u", "a", "y", "s", "c", "d", "m"
DEFAULT_TYPE = "DEFAULT"  # not stored: most tokens have it
CREATED, EXPIRES, DIGEST = "ct", "ex", "h"


@dataclass(frozen=True, slots=True)
class TokenDraft:
    """What a caller asks to store; validated by the service."""

    user_id: str
    app_id: str
    type: str
    scopes: tuple[str, ...]
    client_name: str | None
    device_name: str | None
    metadata: dict[str, Any] | None

    def redis_fields(self, token_digest: bytes) -> list[str | bytes]:
        pairs: list[str | bytes] = [USER, self.user_id, APP, self.app_id, DIGEST, token_digest]
        optional = {
            TYPE: None if self.type == DEFAULT_TYPE else self.type,
            SCOPES: " ".join(self.scopes),
            CLIENT: self.client_name,
            DEVICE: self.device_name,
            META: orjson.dumps(self.metadata).decode() if self.metadata else None,
        }
        for name, value in optional.items():
            if value:
                pairs += [name, value]
        return pairs

    def record(self, token_id: str, digest: bytes, created_us: int, expires_at: int) -> TokenRecord:
        return TokenRecord(
            **{f.name: getattr(self, f.name) for f in fields(TokenDraft)},
            id=token_id,
            created_us=created_us,
            expires_at=expires_at,
            digest=digest,
        )


@dataclass(frozen=True, slots=True)
class TokenRecord(TokenDraft):
    """A stored token: what was asked for, plus its id, times and secret digest."""

    id: str
    created_us: int
    expires_at: int
    digest: bytes

    @property
    def created_at(self) -> int:
        return self.created_us // 1000

    def to_json(self) -> dict[str, Any]:
        """The public view: never the token value nor its digest."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "app_id": self.app_id,
            "type": self.type,
            "scopes": list(self.scopes),
            "client_name": self.client_name,
            "device_name": self.device_name,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


# Every field a token hash may hold, as Redis returns their names.
_FIELDS = frozenset(
    name.encode()
    for name in (USER, APP, TYPE, SCOPES, CLIENT, DEVICE, META, CREATED, EXPIRES, DIGEST)
)


def decode(tid: TokenId, raw: dict[bytes, bytes]) -> TokenRecord | None:
    """The record in a token hash, or None if the hash is gone or incomplete."""
    if not raw.keys() <= _FIELDS:
        return _decode_any(tid, raw)
    # The hot path: only known fields, so no field name needs decoding.
    try:
        kind = raw.get(b"y")
        scopes = raw.get(b"s")
        client = raw.get(b"c")
        device = raw.get(b"d")
        meta = raw.get(b"m")
        return TokenRecord(
            id=str(tid),
            user_id=raw[b"u"].decode(),
            app_id=raw[b"a"].decode(),
            type=DEFAULT_TYPE if kind is None else kind.decode(),
            scopes=() if scopes is None else tuple(scopes.decode().split()),
            client_name=None if client is None else client.decode(),
            device_name=None if device is None else device.decode(),
            metadata=orjson.loads(meta) if meta else None,
            created_us=int(raw[b"ct"]),
            expires_at=int(raw[b"ex"]),
            digest=raw[b"h"],
        )
    except (KeyError, ValueError):
        return None


def _decode_any(tid: TokenId, raw: dict[bytes, bytes]) -> TokenRecord | None:
    """decode() for a hash with fields of no record (never written by the service)."""
    try:
        text = {k.decode(): v for k, v in raw.items() if k != b"h"}
        meta = text.get(META)
        return TokenRecord(
            id=str(tid),
            user_id=text[USER].decode(),
            app_id=text[APP].decode(),
            type=text[TYPE].decode() if TYPE in text else DEFAULT_TYPE,
            scopes=tuple(text[SCOPES].decode().split()) if SCOPES in text else (),
            client_name=text[CLIENT].decode() if CLIENT in text else None,
            device_name=text[DEVICE].decode() if DEVICE in text else None,
            metadata=orjson.loads(meta) if meta else None,
            created_us=int(text[CREATED]),
            expires_at=int(text[EXPIRES]),
            digest=raw[b"h"],
        )
    except (KeyError, ValueError):
        return None
