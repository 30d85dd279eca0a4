"""Values the rules (service.py, session_rules.py) share with each other and the API: who
asked for a change (``Actor``), what issuing returns (``IssuedToken``), public ids parsed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service import tokens
from service.clock import now_ms
from service.errors import BadRequest
from service.events import EventKind, RevocationEvent
from service.records import TokenRecord
from service.tokens import TokenId

ID_DRAWS = 3  # fresh ids drawn before giving up (a clash is about 1 in 2**64 per user)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: TokenRecord
    token: str | None  # the minted value, shown once; None for a registered token


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, as written to the revocation events."""

    name: str = "anonymous"
    info: dict[str, Any] | None = None
    via: str | None = None  # self-service: id of the token the user presented

    def event(self, kind: EventKind, app_id: str, **fields: Any) -> RevocationEvent:
        """The event of a revocation this actor made, now."""
        return RevocationEvent(
            kind, app_id, actor=self.name, via=self.via, at=now_ms(), info=self.info, **fields
        )


def parse_id(token_id: str, what: str = "token") -> TokenId:
    """A token or session id (``what``), or a 400 naming it."""
    tid = tokens.parse_id(token_id)
    if tid is None:
        raise BadRequest(f"not a {what} id", code=f"invalid_{what}_id")
    return tid
