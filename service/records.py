"""Token records: what a caller asks to store, and the compact form a token takes in Redis.

A stored record is one field value of its user's hash (layout v2, see keys.py):

    expires ms (6 bytes) | created us (7 bytes) | digest (16 bytes) | flags (1 char) | pieces

``pieces`` are separated by ``SEP`` (0x1f, which JSON text never holds unescaped): app id,
user id, type, scopes, client name, device name, metadata, and an optional eighth, the
session piece (``Session`` below; absent for a token that is a session of its own with no
idle lifetime, which keeps such records as small as before sessions existed). Each but
scopes is already JSON (orjson's output), and an empty piece means the default (user: the
hash's owner, stored once per hash; type: ``DEFAULT``; the others: null), so an answer is
built by concatenation, without decoding and re-encoding. Scopes are RFC 6749 scope tokens
(no quote, no backslash) joined by spaces: valid inside a JSON string as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service import json_limits

DEFAULT_TYPE = "DEFAULT"
SEP = b"\x1f"
# Times are unsigned big-endian integers (epoch ms until the year 10889, us until 4253).
EXPIRES, CREATED, DIGEST, FLAGS = slice(0, 6), slice(6, 13), slice(13, 29), slice(29, 30)
HEADER_BYTES = 30
FLAGS_NONE = b"0"
PIECES = 7  # app, user, type, scopes, client, device, metadata (then the session piece)
SESSION_PIECE = 7
_NULL = b"null"
_DEFAULT_TYPE_JSON = b'"DEFAULT"'


def json_text(value: str) -> bytes:
    return orjson.dumps(value)


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

    def tail_pieces(self) -> bytes:
        """The pieces after app and user, as stored."""
        return SEP.join(
            (
                b"" if self.type == DEFAULT_TYPE else json_text(self.type),
                " ".join(self.scopes).encode(),
                b"" if self.client_name is None else json_text(self.client_name),
                b"" if self.device_name is None else json_text(self.device_name),
                orjson.dumps(self.metadata) if self.metadata else b"",
            )
        )


class TokenRecord:
    """A stored token, read from its compact form; fields are decoded when first asked for,
    and the API's JSON is built from the stored pieces (``json_bytes``)."""

    __slots__ = (
        "_pieces", "_user", "app_id", "created_us", "digest", "expires_at", "flags", "id",
        "session",
    )  # fmt: skip

    def __init__(
        self,
        token_id: str,
        *,
        expires_at: int,
        created_us: int,
        digest: bytes,
        flags: bytes,
        user_json: bytes,
        pieces: list[bytes],
    ) -> None:
        self.id = token_id
        self.expires_at = expires_at
        self.created_us = created_us
        self.digest = digest
        self.flags = flags
        self._user = user_json
        self._pieces = pieces
        self.app_id = _text(pieces[0])
        self.session = Session.parse(pieces[SESSION_PIECE] if len(pieces) > PIECES else b"")

    @classmethod
    def parse(cls, token_id: str, owner_json: bytes | None, raw: bytes) -> TokenRecord | None:
        """The record stored as ``raw`` in a hash owned by ``owner_json``; None if it is not
        one (a field this service did not write)."""
        pieces = raw[HEADER_BYTES:].split(SEP)
        if len(raw) < HEADER_BYTES or len(pieces) < PIECES:
            return None
        user_json = pieces[1] or owner_json
        if not user_json:
            return None
        try:
            return cls(
                token_id,
                expires_at=int.from_bytes(raw[EXPIRES]),
                created_us=int.from_bytes(raw[CREATED]),
                digest=raw[DIGEST],
                flags=raw[FLAGS],
                user_json=user_json,
                pieces=pieces,
            )
        except (ValueError, IndexError, orjson.JSONDecodeError):
            return None

    # --- fields -----------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return _text(self._user)

    @property
    def type(self) -> str:
        raw = self._pieces[2]
        return _text(raw) if raw else DEFAULT_TYPE

    @property
    def scopes(self) -> tuple[str, ...]:
        raw = self._pieces[3]
        return tuple(raw.decode().split(" ")) if raw else ()

    @property
    def client_name(self) -> str | None:
        return _optional(self._pieces[4])

    @property
    def device_name(self) -> str | None:
        return _optional(self._pieces[5])

    @property
    def metadata(self) -> dict[str, Any] | None:
        raw = self._pieces[6]
        if not raw:
            return None
        # Stored before nesting was bounded, or damaged: left out rather than fail an answer.
        value = json_limits.loads_stored(raw)
        return value if isinstance(value, dict) else None

    @property
    def created_at(self) -> int:
        return self.created_us // 1000

    # --- sessions, rotation and idle lifetimes ------------------------------------------------

    @property
    def session_id(self) -> str:
        """The session's public id: the id of its first token (same tag, that token's rid)."""
        rid = self.session.rid
        return f"{self.id[:19]}{rid[:4]}-{rid[4:]}" if rid else self.id

    @property
    def idle_ttl(self) -> int:
        return self.session.idle_ttl

    @property
    def last_used_at(self) -> int:
        return self.session.last_used_at or self.created_at

    @property
    def session_started_at(self) -> int:
        return self.session.started_at or self.created_at

    @property
    def rotated(self) -> bool:
        return self.session.rotated_at > 0

    @property
    def live_until(self) -> int:
        """Epoch ms when the token stops being live: its expiry, or sooner once idle."""
        idle = self.session.idle_ttl
        if not idle:
            return self.expires_at
        return min(self.expires_at, self.last_used_at + idle * 1000)

    def usable(self, now: int) -> bool:
        """Live at ``now`` (epoch ms): neither rotated, nor idle, nor expired."""
        return not self.session.rotated_at and self.live_until > now

    def __repr__(self) -> str:
        return f"TokenRecord({self.id!r}, app_id={self.app_id!r}, expires_at={self.expires_at})"

    # --- the public view --------------------------------------------------------------------

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
            "session_id": self.session_id,
            "idle_ttl": self.idle_ttl,
            "last_used_at": self.last_used_at,
            **({"rotated": True} if self.rotated else {}),
        }

    def json_bytes(self) -> bytes:
        """``orjson.dumps(self.to_json())``, concatenated from the stored pieces."""
        return self._public_json(b'{"id":"')

    def introspection_json(self) -> bytes:
        """``orjson.dumps({"active": True, **self.to_json()})``, as json_bytes()."""
        return self._public_json(b'{"active":true,"id":"')

    def _public_json(self, opening: bytes) -> bytes:
        p = self._pieces
        scopes = b'["' + p[3].replace(b" ", b'","') + b'"]' if p[3] else b"[]"
        return b"".join(
            (
                opening, self.id.encode(),
                b'","user_id":', self._user,
                b',"app_id":', p[0],
                b',"type":', p[2] or _DEFAULT_TYPE_JSON,
                b',"scopes":', scopes,
                b',"client_name":', p[4] or _NULL,
                b',"device_name":', p[5] or _NULL,
                b',"metadata":', p[6] or _NULL,
                b',"created_at":', str(self.created_us // 1000).encode(),
                b',"expires_at":', str(self.expires_at).encode(),
                b',"session_id":"', self.session_id.encode(),
                b'","idle_ttl":', str(self.session.idle_ttl).encode(),
                b',"last_used_at":', str(self.last_used_at).encode(),
                b',"rotated":true}' if self.rotated else b"}",
            )
        )  # fmt: skip

    def oauth_json(self) -> bytes:
        """RFC 7662's answer for this live token (what api/oauth.py documents)."""
        p = self._pieces
        return b"".join(
            (
                b'{"active":true,"scope":"', p[3],
                b'","client_id":', p[0],
                b',"sub":', self._user,
                b',"exp":', str(self.expires_at // 1000).encode(),
                b',"iat":', str(self.created_us // 1_000_000).encode(),
                b',"token_type":', p[2] or _DEFAULT_TYPE_JSON,
                b',"jti":"', self.id.encode(),
                b'"}',
            )
        )  # fmt: skip


class Session:
    """The session piece of a record: ASCII fields joined by commas, trailing empty ones left
    out; an empty field is the default. Lua writes and updates it (lua/lib.lua):

        session rid (16 hex; empty: this token's own) , idle ttl s , session start ms
        , session end ms (absolute limit) , last use ms , rotated at ms , successor rid

    A plain slotted class, parsed in one pass: it is read on every introspection of a token
    that has one (a frozen dataclass cost 3 us per parse, a fifth of an introspection's
    Python time).
    """

    __slots__ = ("ends_at", "idle_ttl", "last_used_at", "rid", "rotated_at", "started_at",
                 "successor")  # fmt: skip

    def __init__(
        self,
        rid: str = "",
        idle_ttl: int = 0,
        started_at: int = 0,
        ends_at: int = 0,
        last_used_at: int = 0,
        rotated_at: int = 0,
        successor: str = "",
    ) -> None:
        self.rid = rid
        self.idle_ttl = idle_ttl
        self.started_at = started_at
        self.ends_at = ends_at
        self.last_used_at = last_used_at
        self.rotated_at = rotated_at
        self.successor = successor

    @classmethod
    def parse(cls, raw: bytes) -> Session:
        if not raw:
            return _NO_SESSION
        f = raw.split(b",")
        f += _EMPTY_FIELDS[len(f) :]
        return cls(
            f[0].decode("ascii"),
            int(f[1] or 0), int(f[2] or 0), int(f[3] or 0), int(f[4] or 0), int(f[5] or 0),
            f[6].decode("ascii"),
        )  # fmt: skip


_EMPTY_FIELDS = [b""] * 7
_NO_SESSION = Session()


def _text(raw: bytes) -> str:
    value: str = orjson.loads(raw)
    return value


def _optional(raw: bytes) -> str | None:
    return _text(raw) if raw else None
