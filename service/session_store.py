"""Sessions in Redis: rotating a token within its session, revoking a session, and recording
when tokens with an idle lifetime were used. Each is a script on the user hash's slot (the
policy is session_rules.py's)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import orjson

from service.keys import rid_field
from service.records import TokenRecord
from service.storage import IdClash, Reused, Rotated, SessionRevoked
from service.tokens import TokenId
from service.user_tokens import PRUNE_BUDGET, revoked_tokens, scope_args

if TYPE_CHECKING:
    from service.store import TokenStore


class SessionStore:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._keys = store.keys
        self._touch_loaded = False

    async def rotate(
        self,
        tid: TokenId,
        digest: bytes,
        successor: TokenId,
        successor_digest: bytes,
        grace_ms: int,
        user_id: str | None,
        apps: Collection[str] | None,
    ) -> Rotated | Reused | None:
        if apps is not None and not apps:
            return None
        user, app_args = scope_args(user_id, apps)
        args = [rid_field(tid), digest, rid_field(successor), successor_digest, grace_ms]
        args += [PRUNE_BUDGET, user, *app_args]
        script = (await self._store.scripts()).rotate
        reply = await self._store.run("rotate", script, [self._keys.user(tid.tag)], args)
        outcome = reply[0]
        if outcome == b"ok":
            record = TokenRecord.parse(str(successor), reply[2], reply[1])
            assert record is not None
            replaced = TokenId(tid.tag, reply[3].hex()) if reply[3] else None
            return Rotated(record, replaced, int(reply[4]))
        if outcome == b"clash":
            raise IdClash
        if outcome == b"reused":
            session = TokenId(tid.tag, reply[2].decode())
            return Reused(orjson.loads(reply[1]), session, revoked_tokens(tid.tag, reply[3:]))
        return None

    async def revoke(
        self, session_id: TokenId, user_id: str | None, apps: Collection[str] | None
    ) -> SessionRevoked | None:
        if apps is not None and not apps:
            return None
        user, app_args = scope_args(user_id, apps)
        args = [session_id.rid, user, *app_args]
        script = (await self._store.scripts()).revoke_session
        key = self._keys.user(session_id.tag)
        reply = await self._store.run("revoke_session", script, [key], args)
        if not reply:
            return None
        return SessionRevoked(orjson.loads(reply[0]), revoked_tokens(session_id.tag, reply[1:]))

    async def record_uses(self, uses: Mapping[TokenId, int]) -> None:
        store = self._store
        batcher = store.batcher
        by_tag: dict[str, list[bytes]] = defaultdict(list)
        for tid, used_at in uses.items():
            by_tag[tid.tag] += [rid_field(tid), str(used_at).encode()]
        script = (await store.scripts()).touch
        calls = [(self._keys.user(tag), args) for tag, args in by_tag.items()]
        with store.calls("record_uses"):
            if not self._touch_loaded:  # a pipeline's EVALSHA does not load a missing script
                await script([calls[0][0]], calls[0][1])
                self._touch_loaded, calls = True, calls[1:]
            # One EVALSHA per user, all in the batcher's pipeline: one round trip per tick.
            replies = await asyncio.gather(
                *(batcher.read("EVALSHA", script.sha, "1", key, *args) for key, args in calls),
                return_exceptions=True,
            )
        # NOSCRIPT (a restarted Redis, a Cluster node not used before): once the slow way.
        for (key, args), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                await store.run("record_uses", script, [key], args)
