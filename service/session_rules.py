"""The rules of sessions and rotation: a user's logins, logging one out, and refresh-token
rotation with reuse detection. Part of TokenService (``TokenService.sessions``), whose lookups
and events it uses; like it, it never touches Redis itself.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service import tokens
from service.errors import BadRequest, Conflict
from service.events import EventKind, SessionReason
from service.records import TokenRecord
from service.rule_types import ID_DRAWS, Actor, IssuedToken, parse_id
from service.scope import Scope
from service.storage import IdClash, Reused, Revoked, Rotated
from service.tokens import TokenId

if TYPE_CHECKING:
    from service.service import TokenService

SELF_ACTOR = "self"  # auth.SELF: a user acting with their own token


@dataclass(frozen=True, slots=True)
class SessionView:
    """One login: the live tokens of one session, as ``GET /v1/users/{id}/sessions`` lists it."""

    session_id: str
    app_id: str
    device_name: str | None  # the newest token's
    client_name: str | None
    created_at: int  # the session's start, epoch ms
    last_used_at: int
    token_ids: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "app_id": self.app_id,
            "device_name": self.device_name,
            "client_name": self.client_name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "token_ids": self.token_ids,
        }


class SessionRules:
    def __init__(self, token_service: TokenService) -> None:
        self.tokens = token_service

    async def list_sessions(
        self, user_id: str, app_id: str | None = None, *, scope: Scope
    ) -> list[SessionView]:
        """The user's sessions with a live token in scope, newest first."""
        by_session: dict[str, list[TokenRecord]] = defaultdict(list)
        for record in await self.tokens.list_user(user_id, app_id, scope=scope):
            by_session[record.session_id].append(record)
        views = [
            SessionView(
                session_id=sid,
                app_id=records[0].app_id,
                device_name=records[0].device_name,
                client_name=records[0].client_name,
                created_at=min(r.session_started_at for r in records),
                last_used_at=max(r.last_used_at for r in records),
                token_ids=[r.id for r in records],
            )
            for sid, records in by_session.items()
        ]
        return sorted(views, key=lambda v: (-v.created_at, v.session_id))

    async def revoke_session(self, session_id: str, actor: Actor, *, scope: Scope) -> list[str]:
        """Revoke every token of a session (log out one device)."""
        sid = parse_id(session_id, "session")
        result = await self.tokens.store.revoke_session(sid, user_id=scope.user_id, apps=scope.apps)
        if result is None or not result.revoked:
            return []
        reason = SessionReason.USER if actor.name == SELF_ACTOR else SessionReason.REVOKED
        await self.tokens._emit(
            EventKind.SESSION, result.revoked, actor, result.user_id, session=(str(sid), reason)
        )
        self.tokens.observer.revoked("session")
        return [str(r.id) for r in result.revoked]

    async def rotate(self, value: str, actor: Actor, *, scope: Scope) -> IssuedToken:
        """A new token in the same session for a live token ``value``, which stops being live;
        a rotated token presented again revokes its session (BadRequest ``token_reused``),
        but within the grace, for the immediate predecessor of the live token only.

        One script decides, atomically; then, at once, the app index learns the successor and
        the app's watermark is read again (it lives in other slots than the user's hash)."""
        digest = tokens.digest(value)
        tid = await self.tokens._locate(value, digest)
        if tid is None:
            raise BadRequest("the token is not live", code="invalid_token")
        if actor.via is not None and str(tid) != actor.via:
            raise BadRequest("a user's own token rotates itself only", code="invalid_token")
        grace_ms = self.tokens.settings.rotation_grace * 1000
        for _ in range(ID_DRAWS):
            successor = tokens.new_id(tid.tag)
            new_value = tokens.mint(successor)
            try:
                outcome = await self.tokens.store.rotate(
                    tid,
                    digest,
                    successor,
                    tokens.digest(new_value),
                    grace_ms,
                    user_id=scope.user_id,
                    apps=scope.apps,
                )
            except IdClash:
                continue
            if outcome is None:
                raise BadRequest("the token is not live", code="invalid_token")
            if isinstance(outcome, Reused):
                raise await self._reused(outcome, actor)
            await self._settle(outcome, successor)
            if outcome.replaced is not None:
                replaced = [Revoked(outcome.replaced, outcome.record.app_id)]
                await self.tokens._emit(EventKind.TOKEN, replaced, actor, outcome.record.user_id)
            self.tokens.observer.issued(registered=False)
            return IssuedToken(outcome.record, new_value)
        raise Conflict("could not draw a free token id; retry")

    async def _settle(self, outcome: Rotated, successor: TokenId) -> None:
        """Index the successor for its app's listings and sweeps, and check the app's
        watermark: an app revocation the script could not see (other slots) may cover the
        presented token. Then the successor is undone (one made before that revocation is
        covered too; undoing it changes nothing) and the rotation refused."""
        record = outcome.record
        store = self.tokens.store
        _, marks = await asyncio.gather(
            store.index_token(record.app_id, successor, record.expires_at),
            store.watermarks(record.user_id),
        )
        if outcome.presented_created_us < marks.get(record.app_id, 0):
            await store.revoke_one(successor, user_id=None, apps=None)
            raise BadRequest("the token is not live", code="invalid_token")

    async def _reused(self, reused: Reused, actor: Actor) -> BadRequest:
        """Report the reuse (events, metrics); returns the error to answer."""
        session = (str(reused.session_id), SessionReason.REUSE)
        await self.tokens._emit(
            EventKind.SESSION, reused.revoked, actor, reused.user_id, session=session
        )
        self.tokens.observer.revoked("session")
        return BadRequest(
            "this token was rotated already: every token of its session is revoked",
            code="token_reused",
        )
