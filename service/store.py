"""TokenStore: the ``Store`` of storage.py on Redis, and every Redis read and write of the service.

Keys are named in keys.py, scripts live in lua/ (each prefixed with lua/lib.lua when loaded).
Single-user changes are one Lua script on the user's slot; reads on the introspection path go
through the per-tick batcher. Nothing here decides policy; that is service.py's job.

TokenStore is the one object the rest of the service uses. It owns the connection, the
scripts and the batched reads of the introspection path; the rest is done by its parts, each
of one job: keyspace.py (is Redis safe to serve), user_tokens.py (issue, revoke, list),
session_store.py (rotation, sessions, uses), jwt_revocations.py, app_watermarks.py,
app_index.py (listing and sweeping an app) and event_log.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from redis.asyncio import RedisCluster

from service import tokens
from service.app_index import AppIndex
from service.app_watermarks import AppWatermarks
from service.batching import ReadBatcher
from service.clock import now_ms
from service.durability import Durability
from service.errors import NotDurable
from service.event_log import EventLog, StreamEntry, StreamState
from service.events import RevocationEvent
from service.jwt_revocations import JwtRevocations
from service.keys import OWNER_FIELD, Keys, rid_field
from service.keyspace import Keyspace
from service.observer import NO_OBSERVER, Observer
from service.records import TokenDraft, TokenRecord
from service.redis_client import AnyRedis, RedisCalls, RedisConnector
from service.redis_ops import RedisOps, Script, load_script
from service.session_store import SessionStore
from service.settings import Settings
from service.storage import (
    Issued,
    JwtState,
    Reused,
    Revoked,
    RevokedOne,
    Rotated,
    SessionRevoked,
    SessionTerms,
    Watermarks,
)
from service.tokens import TokenId
from service.user_tokens import UserTokens
from service.watermark_copies import WatermarkCopies


class _Scripts:
    """The Lua scripts, registered once per client (EVALSHA, reloaded on NOSCRIPT)."""

    def __init__(self, client: AnyRedis) -> None:
        self.issue = load_script(client, "issue")
        self.revoke_one = load_script(client, "revoke_one")
        self.revoke_user = load_script(client, "revoke_user")
        self.index_app = load_script(client, "index_app")
        self.revoke_app = load_script(client, "revoke_app")
        self.finish_sweep = load_script(client, "finish_sweep")
        self.log_user_event = load_script(client, "log_user_event")
        self.merge_watermarks = load_script(client, "merge_watermarks")
        self.rotate = load_script(client, "rotate")
        self.revoke_session = load_script(client, "revoke_session")
        self.touch = load_script(client, "touch")
        self.deny_jwt = load_script(client, "deny_jwt")
        self.cut_off_jwts = load_script(client, "cut_off_jwts")
        # Webhooks (service.webhooks): the delivery lease, the dead letters.
        self.claim_lease = load_script(client, "claim_lease")
        self.release_lease = load_script(client, "release_lease")
        self.add_dead_letter = load_script(client, "add_dead_letter")
        self.drop_dead_letter = load_script(client, "drop_dead_letter")


class TokenStore:
    def __init__(self, settings: Settings, observer: Observer = NO_OBSERVER) -> None:
        self.keys = Keys(settings.key_prefix)
        self.calls = RedisCalls(observer)
        self.connector = RedisConnector(settings, self._on_connect, self.calls)
        self.batcher = ReadBatcher(self.connector.client, self.calls, settings.read_timeout)
        self.durability = Durability(settings.wait_replicas, settings.wait_timeout)
        self.keyspace = Keyspace(self, settings)
        self.marks = AppWatermarks(self)
        self.users = UserTokens(self)
        self.sessions = SessionStore(self)
        self.jwts = JwtRevocations(self)
        self.apps = AppIndex(self)
        self.events = EventLog(self)
        self._scripts: _Scripts | None = None
        self._ops: RedisOps | None = None
        self._retention_ms = settings.max_ttl * 1000

    async def _on_connect(self, client: AnyRedis) -> None:
        ops = RedisOps(client)
        await self.keyspace.open(ops)
        scripts = _Scripts(client)
        if isinstance(client, RedisCluster):
            copies = WatermarkCopies(self, client, scripts.merge_watermarks, ops)
            await copies.fill_once(self._retention_ms)
            self.marks.copies = copies
        self._scripts = scripts
        self._ops = ops

    async def ops(self) -> RedisOps:
        await self.connector.client()
        assert self._ops is not None
        return self._ops

    async def scripts(self) -> _Scripts:
        await self.connector.client()
        assert self._scripts is not None
        return self._scripts

    async def client(self) -> AnyRedis:
        return await self.connector.client()

    async def close(self) -> None:
        await self.batcher.drain()
        await self.connector.close()

    async def run(self, op: str, script: Script, keys: list[str], args: Sequence[Any]) -> Any:
        """One script call, timed and counted as store operation ``op``."""
        with self.calls(op):
            return await script(keys, args)

    async def run_durable(
        self, op: str, script: Script, keys: list[str], args: Sequence[Any]
    ) -> tuple[Any, NotDurable | None]:
        """A revocation's script call: with ``TOKENSTORE_WAIT_REPLICAS``, also the error to
        raise (with the call's outcome) if too few replicas confirmed it (service.durability)."""
        if not self.durability.replicas:
            return await self.run(op, script, keys, args), None
        client, mark = await self.client(), self.keys.durability_mark(keys[0])
        with self.calls(op):
            return await self.durability.run(client, script, keys, args, mark)

    async def ping(self) -> bool:
        ops = await self.ops()
        with self.calls("ping"):
            return await ops.ping()

    async def user_tag(self, user_id: str) -> str:
        await self.connector.client()
        return tokens.user_tag(self.keyspace.tag_key, user_id)

    async def readiness(self) -> int:
        """Check that Redis answers and may not evict keys (raising Unavailable or
        UnsafeRedis); returns how many Cluster primaries did not answer."""
        return await self.keyspace.readiness()

    # --- the hot path: batched reads --------------------------------------------------------

    async def read(self, tid: TokenId) -> tuple[TokenRecord | None, Watermarks]:
        user = self.keys.user(tid.tag)
        row = self.batcher.read("HMGET", user, OWNER_FIELD, rid_field(tid))
        marks = self.batcher.read("HGETALL", self.marks.key_near(user))
        owner, raw = await row
        converted = self.marks.converted(await marks)
        if raw is None:
            return None, converted
        record = TokenRecord.parse(str(tid), owner, raw)
        if record is None or record.expires_at <= now_ms():
            return None, converted
        return record, converted

    async def watermarks(self, user_id: str | None = None) -> Watermarks:
        return await self.marks.read(user_id)

    async def find_registered(self, digest: bytes) -> TokenId | None:
        value = await self.batcher.read("GET", self.keys.pointer(digest))
        return tokens.parse_id(value.decode()) if value else None

    # --- registered tokens ------------------------------------------------------------------

    async def claim_pointer(self, digest: bytes, tid: TokenId, ttl_ms: int) -> TokenId | None:
        ops, key = await self.ops(), self.keys.pointer(digest)
        with self.calls("claim_pointer"):
            if await ops.set(key, str(tid), px=ttl_ms, nx=True):
                return None
            existing = await ops.get(key)
        return tokens.parse_id(existing.decode()) if existing else None

    async def set_pointer(self, digest: bytes, tid: TokenId, ttl_ms: int) -> None:
        ops = await self.ops()
        with self.calls("set_pointer"):
            await ops.set(self.keys.pointer(digest), str(tid), px=ttl_ms)

    async def drop_pointer(self, digest: bytes) -> None:
        ops = await self.ops()
        with self.calls("drop_pointer"):
            await ops.unlink(self.keys.pointer(digest))

    # --- one user's tokens (user_tokens.py) -------------------------------------------------

    async def new_id(self, user_id: str) -> TokenId:
        return tokens.new_id(await self.user_tag(user_id))

    async def issue(
        self,
        tid: TokenId,
        draft: TokenDraft,
        digest: bytes,
        ttl_ms: int,
        max_tokens: int,
        session: SessionTerms | None = None,
    ) -> Issued:
        return await self.users.issue(tid, draft, digest, ttl_ms, max_tokens, session)

    async def revoke_one(
        self, tid: TokenId, *, user_id: str | None, apps: Collection[str] | None
    ) -> RevokedOne | None:
        return await self.users.revoke_one(tid, user_id, apps)

    async def revoke_user(
        self,
        user_id: str,
        *,
        apps: Collection[str] | None,
        keep: TokenId | None,
        keep_session: TokenId | None = None,
    ) -> list[Revoked]:
        return await self.users.revoke_user(user_id, apps, keep, keep_session)

    async def list_user(self, user_id: str) -> list[TokenRecord]:
        return await self.users.list_user(user_id)

    # --- sessions, rotation and uses (session_store.py) -------------------------------------

    async def rotate(
        self,
        tid: TokenId,
        digest: bytes,
        successor: TokenId,
        successor_digest: bytes,
        grace_ms: int,
        *,
        user_id: str | None,
        apps: Collection[str] | None,
    ) -> Rotated | Reused | None:
        return await self.sessions.rotate(
            tid, digest, successor, successor_digest, grace_ms, user_id, apps
        )

    async def revoke_session(
        self, session_id: TokenId, *, user_id: str | None, apps: Collection[str] | None
    ) -> SessionRevoked | None:
        return await self.sessions.revoke(session_id, user_id, apps)

    async def record_uses(self, uses: Mapping[TokenId, int]) -> None:
        await self.sessions.record_uses(uses)

    async def index_token(self, app_id: str, tid: TokenId, expires_at: int) -> None:
        await self.apps.add_user(app_id, tid.tag, expires_at + 1000)

    # --- JWTs (jwt_revocations.py) ----------------------------------------------------------

    async def jwt_state(self, issuer: str, jti: str, user_id: str) -> JwtState:
        return await self.jwts.state(issuer, jti, user_id)

    async def deny_jwt(self, issuer: str, jti: str, expires_at_ms: int) -> None:
        await self.jwts.deny(issuer, jti, expires_at_ms)

    async def cut_off_jwts(
        self, user_id: str, apps: Collection[str] | None, lifetime_ms: int
    ) -> int:
        return await self.jwts.cut_off(user_id, apps, lifetime_ms)

    # --- apps and events (app_index.py, app_watermarks.py, event_log.py) --------------------

    def app_tokens(self, app_id: str, after: str | None) -> AsyncIterator[tuple[TokenRecord, str]]:
        return self.apps.tokens(app_id, after)

    async def revoke_app(self, app_id: str, retention_ms: int) -> int:
        return await self.marks.revoke_app(app_id, retention_ms)

    async def append_event(
        self, event: RevocationEvent, retention_ms: int, user_id: str | None = None
    ) -> str:
        tag = None if user_id is None else await self.user_tag(user_id)
        return await self.events.append(event, retention_ms, tag)

    async def user_events(self, user_id: str) -> list[RevocationEvent]:
        return await self.events.of_user(await self.user_tag(user_id))

    async def event_stream(self) -> StreamState | None:
        return await self.events.stream()

    async def read_events(self, after: str, block_ms: int, count: int) -> list[StreamEntry]:
        return await self.events.read(after, block_ms, count)

    async def event_range(self, after: str, last: str, count: int) -> list[StreamEntry]:
        return await self.events.range(after, last, count)
