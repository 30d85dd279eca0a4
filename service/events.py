"""Revocation events: one typed model for the service that writes them, the Redis stream
that keeps them, the feed that streams them (``/v1/events``), a user's event list
(``/v1/users/{id}/events``), the gateway client that reads them and the OpenAPI document.

Each form is a method here, so a new kind or field is added in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import orjson

from service import json_limits


class EventKind(enum.StrEnum):
    TOKEN = "token"  # tokens named by id (revoked one by one, or evicted by the per-user limit)
    USER = "user"  # a user's tokens: all, or one app's (scope USER_APP)
    APP = "app"  # every token of an app created before ``revoked_before``
    SESSION = "session"  # every token of one session (``session_id``), for ``reason``
    # JWTs: one denied (``ids``: its jti; ``issuer``, None for every configured one; denied
    # until ``expires_at``), or a user's cut off (``revoked_before``, no ids). An app's JWTs
    # are cut off by its APP event.
    JWT = "jwt"


class SessionReason(enum.StrEnum):
    REVOKED = "revoked"  # by an API client
    USER = "user"  # by the user, with their own token
    REUSE = "reuse"  # a rotated token was presented again


USER_APP = "user_app"  # the scope of a USER event limited to one app
# What the feed tells subscribers, besides ids (``actor``, ``via`` and ``info`` stay inside).
_FEED_FIELDS = (
    "app_id", "user_id", "scope", "session_id", "reason", "revoked_before", "issuer",
    "expires_at", "at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    kind: EventKind
    app_id: str
    user_id: str | None = None
    ids: tuple[str, ...] = ()
    scope: str | None = None  # USER_APP: only the user's tokens of ``app_id``
    revoked_before: int | None = None  # APP events, epoch ms
    session_id: str | None = None  # SESSION events
    reason: str | None = None  # SESSION events: a SessionReason
    issuer: str | None = None  # JWT events denying a jti
    expires_at: int | None = None  # JWT events denying a jti: until when (epoch ms)
    actor: str = "anonymous"  # client id, "self" (a user's own token) or "limit"
    via: str | None = None  # "self": the id of the token presented
    at: int = 0  # epoch ms
    info: dict[str, Any] | None = field(default=None, compare=False)

    # --- the Redis stream and a user's list: flat string fields ------------------------------

    def stream_fields(self) -> dict[str, str | int]:
        fields: dict[str, str | int] = {"kind": self.kind.value, "app_id": self.app_id}
        if self.ids:
            fields["ids"] = ",".join(self.ids)
        optional = {
            "user_id": self.user_id, "scope": self.scope, "via": self.via,
            "session_id": self.session_id, "reason": self.reason, "issuer": self.issuer,
        }  # fmt: skip
        fields.update((name, value) for name, value in optional.items() if value is not None)
        if self.revoked_before is not None:
            fields["revoked_before"] = self.revoked_before
        if self.expires_at is not None:
            fields["expires_at"] = self.expires_at
        fields["actor"] = self.actor
        fields["at"] = self.at
        if self.info:
            fields["info"] = orjson.dumps(self.info).decode()
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> RevocationEvent | None:
        """The event of stored fields (strings, or ints where JSON kept them); None if it is
        of no kind this version knows (written by a newer one)."""
        try:
            kind = EventKind(str(fields.get("kind")))
        except ValueError:
            return None
        info = fields.get("info")
        return cls(
            kind=kind,
            app_id=str(fields.get("app_id", "")),
            user_id=_text(fields.get("user_id")),
            ids=tuple(str(fields["ids"]).split(",")) if fields.get("ids") else (),
            scope=_text(fields.get("scope")),
            revoked_before=_number(fields.get("revoked_before")),
            session_id=_text(fields.get("session_id")),
            reason=_text(fields.get("reason")),
            issuer=_text(fields.get("issuer")),
            expires_at=_number(fields.get("expires_at")),
            actor=str(fields.get("actor", "anonymous")),
            via=_text(fields.get("via")),
            at=_number(fields.get("at")) or 0,
            info=_info(info),
        )

    # --- what clients see ---------------------------------------------------------------------

    def public(self) -> dict[str, Any]:
        """An entry of ``/v1/users/{id}/events``: every field present, ids a list."""
        return {
            "kind": self.kind.value,
            "user_id": self.user_id,
            "app_id": self.app_id,
            "ids": list(self.ids),
            "scope": self.scope,
            **({"session_id": self.session_id, "reason": self.reason} if self.session_id else {}),
            **(self._jwt_fields() if self.kind == EventKind.JWT else {}),
            "actor": self.actor,
            "via": self.via,
            "at": self.at,
            "info": self.info,
        }

    def _jwt_fields(self) -> dict[str, Any]:
        return {
            "revoked_before": self.revoked_before,
            "issuer": self.issuer,
            "expires_at": self.expires_at,
        }

    def feed_body(self) -> dict[str, Any]:
        """The ``data`` of a feed message, without ``ids`` (the feed splits long lists)."""
        body: dict[str, Any] = {"kind": self.kind.value}
        for name in _FEED_FIELDS:
            value = getattr(self, name)
            if value is not None and (name != "at" or value):
                body[name] = value
        return body

    @classmethod
    def from_feed(cls, kind: str, data: bytes | str) -> RevocationEvent | None:
        """A feed message as the gateway client reads it; None for another kind."""
        try:
            body = orjson.loads(data)
            ids = ",".join(str(i) for i in body.get("ids") or ())
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return None
        return cls.from_fields({**body, "kind": kind, "ids": ids})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    return int(value) if digits and len(value) <= 20 else None


def _info(stored: Any) -> dict[str, Any] | None:
    # Stored before nesting was bounded, or damaged: left out rather than fail a listing.
    value = json_limits.loads_stored(stored) if isinstance(stored, str) and stored else None
    return value if isinstance(value, dict) else None


def openapi_kinds(*kinds: EventKind) -> dict[str, list[str]]:
    """An OpenAPI ``enum`` of these kinds (all of them if none are named)."""
    return {"enum": [kind.value for kind in kinds or tuple(EventKind)]}
