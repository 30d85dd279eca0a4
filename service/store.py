"""TokenStore: the ``Store`` of storage.py on Redis, and every Redis read and write of the service.

Keys are named in keys.py, scripts live in lua/ (each prefixed with lua/lib.lua when loaded).
Single-user changes are one Lua script on the user's slot; reads on the introspection path go
through the per-tick batcher. Nothing here decides policy; that is service.py's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ResponseError

from service import tokens
from service.app_index import AppIndex
from service.batching import ReadBatcher
from service.clock import now_ms
from service.durability import Durability
from service.errors import NotDurable, Unavailable
from service.event_log import EventLog, StreamEntry, StreamState
from service.events import RevocationEvent
from service.keys import LAYOUT_VERSION, OWNER_FIELD, RID_BYTES, Keys
from service.observer import NO_OBSERVER, Observer
from service.records import TokenDraft, TokenRecord, json_text
from service.redis_client import AnyRedis, RedisCalls, RedisConnector
from service.redis_ops import RedisOps, Script, load_script
from service.settings import Settings, env_name
from service.storage import (
    IdClash,
    Issued,
    JwtState,
    NoSession,
    Reused,
    Revoked,
    RevokedOne,
    Rotated,
    SessionRevoked,
    SessionTerms,
    Watermarks,
)
from service.tokens import TokenId
from service.watermark_copies import WatermarkCopies

log = logging.getLogger(__name__)
# Fields a write script looks at for expired tokens to prune, at most (about): a user with
# many tokens is pruned over several writes, never in one long script. (64 cost an issue at
# 1,000 tokens 276 us of Redis time, 16 cost 131 us: bench/README.md.) A compact (listpack)
# hash is read whole, which hash-max-listpack-entries 128 bounds (deploy/README.md).
PRUNE_BUDGET = 32


class KeyspaceRefused(Unavailable):
    """Redis cannot be served safely as it is: the process refuses to start, and a connection
    made later answers 503, until an operator acts (the message says how)."""


class LayoutMismatch(KeyspaceRefused):
    """Redis holds a keyspace of another storage layout: serving it would show an empty
    registry over existing tokens."""


class UnsafeRedis(KeyspaceRefused):
    """Redis may evict keys: a revocation (a deleted token, an app watermark) could come undone,
    or the tag key vanish and with it every user's tokens."""


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


def _watermarks(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {app.decode(): int(us) for app, us in raw.items()}


def _revoked(tag: str, flat: Sequence[bytes]) -> list[Revoked]:
    """``[rid, app (JSON), ...]`` of a script's reply as Revoked tokens."""
    return [
        Revoked(TokenId(tag, flat[i].hex()), orjson.loads(flat[i + 1]))
        for i in range(0, len(flat), 2)
    ]


class TokenStore:
    def __init__(self, settings: Settings, observer: Observer = NO_OBSERVER) -> None:
        self.keys = Keys(settings.key_prefix)
        self.calls = RedisCalls(observer)
        self.connector = RedisConnector(settings, self._on_connect, self.calls)
        self.batcher = ReadBatcher(self.connector.client, self.calls, settings.read_timeout)
        self.durability = Durability(settings.wait_replicas, settings.wait_timeout)
        self.apps = AppIndex(self)
        self.events = EventLog(self)
        self._scripts: _Scripts | None = None
        self._ops: RedisOps | None = None
        self._tag_key = b""
        self._allow_eviction = settings.allow_evicting_redis
        self._retention_ms = settings.max_ttl * 1000
        self._node_timeout = settings.redis_timeout
        # On a Cluster: the watermarks' copies, one per node (watermark_copies.py).
        self._copies: WatermarkCopies | None = None
        # The watermarks hash as last read, and as converted: every reader of one batch gets
        # the same reply object, so it is converted once per batch, not once per read.
        self._marks: tuple[dict[bytes, bytes], dict[str, int]] = ({}, {})
        self._touch_loaded = False

    async def _on_connect(self, client: AnyRedis) -> None:
        ops = RedisOps(client)
        if not self.connector.embedded:
            await self.check_eviction(ops)
        await self._check_layout(ops)
        # The tag key must outlive every token: it is created once and never expires.
        await ops.hsetnx(self.keys.meta, "tag_key", tokens.new_tag_key())
        tag_key = await ops.hget(self.keys.meta, "tag_key")
        assert tag_key is not None
        self._tag_key = tag_key
        scripts = _Scripts(client)
        if isinstance(client, RedisCluster):
            copies = WatermarkCopies(self, client, scripts.merge_watermarks, ops)
            await copies.fill_once(self._retention_ms)
            self._copies = copies
        self._scripts = scripts
        self._ops = ops

    async def check_eviction(
        self, ops: RedisOps | None = None, node: ClusterNode | None = None
    ) -> None:
        """Raise UnsafeRedis if Redis's ``maxmemory-policy`` (of every primary, or of ``node``)
        may evict keys (unless allowed): only ``noeviction`` keeps every revocation. Where
        CONFIG is not allowed, warn."""
        ops = ops or await self.ops()
        try:
            with self.calls("check_config"):
                policies = await ops.config_values("maxmemory-policy", node)
        except Unavailable as exc:
            if not isinstance(exc.__cause__, ResponseError):
                raise
            log.warning("cannot read Redis's maxmemory-policy; it must be noeviction")
            return
        evicting = sorted(policies - {"noeviction"})
        if not evicting:
            return
        message = (
            f"Redis's maxmemory-policy is {', '.join(evicting)}: it may evict keys, and with "
            "them revocations and the key behind user tags. Set maxmemory-policy noeviction, "
            f"or set {env_name('allow_evicting_redis')}=true to serve anyway."
        )
        if self._allow_eviction:
            log.warning(message)
            return
        raise _refused(UnsafeRedis, message)

    async def _check_layout(self, ops: RedisOps) -> None:
        meta = await ops.hgetall(self.keys.meta)
        if b"layout" not in meta and b"tag_key" not in meta:  # a new keyspace, or a lost meta
            if await ops.any_key(f"{glob_escape(self.keys.prefix)}h:{{*"):
                raise _refused(KeyspaceRefused, meta_lost_message(self.keys.meta))
            await ops.hsetnx(self.keys.meta, "layout", str(LAYOUT_VERSION))
            meta = await ops.hgetall(self.keys.meta)
        # A keyspace with a tag key but no layout was written by tokenstore 0.1 (layout 1).
        found = int(meta.get(b"layout", b"1"))
        if found != LAYOUT_VERSION:
            raise _refused(LayoutMismatch, layout_message(self.keys.prefix, found))

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

    async def readiness(self) -> int:
        """Check that Redis answers and may not evict keys (raising Unavailable or
        UnsafeRedis); returns how many Cluster primaries did not answer. Those fail only the
        tokens they hold, so only a Cluster none of whose primaries answers is not ready."""
        client = await self.client()
        if not isinstance(client, RedisCluster):
            await self.ping()
            if not self.connector.embedded:
                await self.check_eviction()  # CONFIG SET may have changed it since start-up
                await self.keep_meta()
            return 0
        primaries = client.get_primaries()
        checks = await asyncio.gather(
            *(self._primary_ready(node) for node in primaries), return_exceptions=True
        )
        unsafe = [c for c in checks if isinstance(c, KeyspaceRefused)]
        if unsafe:
            raise unsafe[0]
        failed = [c for c in checks if isinstance(c, BaseException)]
        if failed and len(failed) == len(primaries):
            raise failed[0]
        for check in failed:
            if not isinstance(check, Unavailable):
                raise check
        if not failed:  # else its shard may be the one down: the probe must not wait on it
            with contextlib.suppress(Unavailable):
                await self.keep_meta()
        return len(failed)

    async def keep_meta(self) -> None:
        """A Redis that came back empty (no persistence) lost the meta key while this process
        kept serving with its tag key: write both back (every process holds the same key), so
        that a process started later finds the tokens issued since instead of refusing them.
        Raise KeyspaceRefused if another tag key was made meanwhile: this process's user tags
        no longer match the keyspace's, and it must be restarted."""
        ops = await self.ops()
        with self.calls("check_meta"):
            meta = await ops.hgetall(self.keys.meta)
            if b"tag_key" not in meta:
                log.warning("%s was missing (Redis lost its data?); written back", self.keys.meta)
                await ops.hsetnx(self.keys.meta, "layout", str(LAYOUT_VERSION))
                await ops.hsetnx(self.keys.meta, "tag_key", self._tag_key)
                meta = await ops.hgetall(self.keys.meta)
        if meta.get(b"tag_key") != self._tag_key:
            raise _refused(
                KeyspaceRefused,
                f"{self.keys.meta} holds another tag key than this process's (Redis lost its "
                "data and another process made a new one): restart this process",
            )

    async def _primary_ready(self, node: ClusterNode) -> None:
        ops = await self.ops()
        with self.calls("ping"):
            async with asyncio.timeout(self._node_timeout):
                await ops.ping(node)
        await self.check_eviction(ops, node)

    async def user_tag(self, user_id: str) -> str:
        await self.connector.client()
        return tokens.user_tag(self._tag_key, user_id)

    # --- the hot path: batched reads --------------------------------------------------------

    async def read(self, tid: TokenId) -> tuple[TokenRecord | None, Watermarks]:
        user = self.keys.user(tid.tag)
        # On a Cluster, the watermarks' copy on the user hash's node: one node answers both.
        marks_key = self.keys.watermarks if self._copies is None else self._copies.near(user)
        row = self.batcher.read("HMGET", user, OWNER_FIELD, rid_field(tid))
        marks = self.batcher.read("HGETALL", marks_key)
        owner, raw = await row
        converted = self._converted(await marks)
        if raw is None:
            return None, converted
        record = TokenRecord.parse(str(tid), owner, raw)
        if record is None or record.expires_at <= now_ms():
            return None, converted
        return record, converted

    def _converted(self, marks: dict[bytes, bytes]) -> dict[str, int]:
        last, converted = self._marks
        if marks is not last:
            converted = _watermarks(marks)
            self._marks = (marks, converted)
        return converted

    async def watermarks(self, user_id: str | None = None) -> Watermarks:
        key = self.keys.watermarks
        if self._copies is not None and user_id is not None:
            key = self._copies.near(self.keys.user(await self.user_tag(user_id)))
        return self._converted(await self.batcher.read("HGETALL", key))

    async def find_registered(self, digest: bytes) -> TokenId | None:
        value = await self.batcher.read("GET", self.keys.pointer(digest))
        return tokens.parse_id(value.decode()) if value else None

    # --- one user's tokens ------------------------------------------------------------------

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
        await self.apps.add_user(draft.app_id, tid.tag, now_ms() + ttl_ms + 1000)
        user, app = json_text(draft.user_id), json_text(draft.app_id)
        tail = draft.tail_pieces()
        args = [rid_field(tid), ttl_ms, max_tokens, user, app, digest, tail, PRUNE_BUDGET]
        if session is not None:
            args += _session_args(tid, session)
        reply = await self.run(
            "issue", (await self.scripts()).issue, [self.keys.user(tid.tag)], args
        )
        if reply is None:
            raise IdClash
        if reply == 0:
            raise NoSession
        record = TokenRecord.parse(str(tid), reply[1], reply[0])
        assert record is not None
        if reply[2]:  # an app sweep dropped the user from the index meanwhile (issue.lua)
            await self.apps.add_user(draft.app_id, tid.tag, now_ms() + ttl_ms + 1000)
        return Issued(record, _revoked(tid.tag, reply[3:]))

    async def revoke_one(
        self, tid: TokenId, *, user_id: str | None, apps: Collection[str] | None
    ) -> RevokedOne | None:
        if apps is not None and not apps:
            return None
        user = b"" if user_id is None else json_text(user_id)
        args = [rid_field(tid), user, PRUNE_BUDGET, *sorted(json_text(app) for app in apps or ())]
        script = (await self.scripts()).revoke_one
        reply, pending = await self.run_durable(
            "revoke_one", script, [self.keys.user(tid.tag)], args
        )
        revoked = RevokedOne(orjson.loads(reply[0]), orjson.loads(reply[1])) if reply else None
        return _unless_pending(revoked, pending)

    async def revoke_user(
        self,
        user_id: str,
        *,
        apps: Collection[str] | None,
        keep: TokenId | None,
        keep_session: TokenId | None = None,
    ) -> list[Revoked]:
        tag = await self.user_tag(user_id)
        keep_rid = rid_field(keep) if keep is not None and keep.tag == tag else b""
        if keep_session is not None and keep_session.tag == tag:
            keep_rid = keep_session.rid.encode()  # 16 hex digits: a session, not a token
        try:
            revoked, _ = await self.revoke_tag(
                tag, json_text(user_id), apps, keep_rid, None, durable=True
            )
        except NotDurable as exc:
            exc.outcome = exc.outcome[0]  # the revoked tokens, as returned below
            raise
        return revoked

    async def revoke_tag(
        self,
        tag: str,
        user: bytes,
        apps: Collection[str] | None,
        keep_rid: bytes,
        created_before: int | None,
        *,
        durable: bool = False,
    ) -> tuple[list[Revoked], int]:
        """Revoked tokens of the user hash ``tag`` (``user``: JSON id, b"" for any), and the
        latest expiry of those apps' tokens that stay (0: none). ``durable``: a revocation to
        confirm (not the sweep of an app, whose watermark is the revocation)."""
        if apps is not None and not apps:
            return [], 0
        before = "" if created_before is None else created_before
        args = [user, keep_rid, before, *sorted(json_text(app) for app in apps or ())]
        script, keys = (await self.scripts()).revoke_user, [self.keys.user(tag)]
        if durable:
            reply, pending = await self.run_durable("revoke_user", script, keys, args)
        else:
            reply, pending = await self.run("revoke_user", script, keys, args), None
        return _unless_pending((_revoked(tag, reply[1:]), int(reply[0])), pending)

    async def list_user(self, user_id: str) -> list[TokenRecord]:
        # Another user may share the tag (1 in 2**64): the record's user id tells them apart.
        return [
            r for r in await self.list_tag(await self.user_tag(user_id)) if r.user_id == user_id
        ]

    async def list_tag(self, tag: str) -> list[TokenRecord]:
        """The live tokens of user hash ``tag`` (of every user that shares the tag)."""
        ops = await self.ops()
        with self.calls("list_user"):
            fields = await ops.hgetall(self.keys.user(tag))
        owner = fields.get(OWNER_FIELD.encode())
        now = now_ms()
        records = (
            TokenRecord.parse(str(TokenId(tag, rid.hex())), owner, raw)
            for rid, raw in fields.items()
            if len(rid) == RID_BYTES
        )
        return [r for r in records if r is not None and r.expires_at > now]

    # --- sessions, rotation and uses --------------------------------------------------------

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
        if apps is not None and not apps:
            return None
        user = b"" if user_id is None else json_text(user_id)
        args = [rid_field(tid), digest, rid_field(successor), successor_digest, grace_ms]
        args += [PRUNE_BUDGET, user, *sorted(json_text(app) for app in apps or ())]
        script = (await self.scripts()).rotate
        reply = await self.run("rotate", script, [self.keys.user(tid.tag)], args)
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
            return Reused(orjson.loads(reply[1]), session, _revoked(tid.tag, reply[3:]))
        return None

    async def revoke_session(
        self, session_id: TokenId, *, user_id: str | None, apps: Collection[str] | None
    ) -> SessionRevoked | None:
        if apps is not None and not apps:
            return None
        user = b"" if user_id is None else json_text(user_id)
        args = [session_id.rid, user, *sorted(json_text(app) for app in apps or ())]
        script = (await self.scripts()).revoke_session
        reply = await self.run("revoke_session", script, [self.keys.user(session_id.tag)], args)
        if not reply:
            return None
        return SessionRevoked(orjson.loads(reply[0]), _revoked(session_id.tag, reply[1:]))

    async def record_uses(self, uses: Mapping[TokenId, int]) -> None:
        by_tag: dict[str, list[bytes]] = defaultdict(list)
        for tid, used_at in uses.items():
            by_tag[tid.tag] += [rid_field(tid), str(used_at).encode()]
        script = (await self.scripts()).touch
        calls = [(self.keys.user(tag), args) for tag, args in by_tag.items()]
        with self.calls("record_uses"):
            if not self._touch_loaded:  # a pipeline's EVALSHA does not load a missing script
                await script([calls[0][0]], calls[0][1])
                self._touch_loaded, calls = True, calls[1:]
            # One EVALSHA per user, all in the batcher's pipeline: one round trip per tick.
            replies = await asyncio.gather(
                *(self.batcher.read("EVALSHA", script.sha, "1", key, *args) for key, args in calls),
                return_exceptions=True,
            )
        # NOSCRIPT (a restarted Redis, a Cluster node not used before): once the slow way.
        for (key, args), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                await self.run("record_uses", script, [key], args)

    async def index_token(self, app_id: str, tid: TokenId, expires_at: int) -> None:
        await self.apps.add_user(app_id, tid.tag, expires_at + 1000)

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

    # --- JWTs (jwt_rules.py) ----------------------------------------------------------------

    async def jwt_state(self, issuer: str, jti: str, user_id: str) -> JwtState:
        tag = await self.user_tag(user_id)
        user = self.keys.user(tag)
        marks_key = self.keys.watermarks if self._copies is None else self._copies.near(user)
        denied = self.batcher.read("GET", self.keys.jwt_denied(issuer, jti))
        cutoffs = self.batcher.read("HGETALL", self.keys.jwt_cutoffs(tag))
        marks = self.batcher.read("HGETALL", marks_key)
        return JwtState(
            await denied is not None, _watermarks(await cutoffs), self._converted(await marks)
        )

    async def deny_jwt(self, issuer: str, jti: str, expires_at_ms: int) -> None:
        script = (await self.scripts()).deny_jwt
        keys = [self.keys.jwt_denied(issuer, jti)]
        _reply, pending = await self.run_durable("deny_jwt", script, keys, [expires_at_ms])
        _unless_pending(None, pending)

    async def cut_off_jwts(
        self, user_id: str, apps: Collection[str] | None, lifetime_ms: int
    ) -> int:
        script = (await self.scripts()).cut_off_jwts
        keys = [self.keys.jwt_cutoffs(await self.user_tag(user_id))]
        fields = ["*"] if apps is None else sorted(apps)
        reply, pending = await self.run_durable(
            "cut_off_jwts", script, keys, [lifetime_ms, *fields]
        )
        return _unless_pending(int(reply), pending)

    # --- apps and events (app_index.py, event_log.py) ----------------------------------------

    def app_tokens(self, app_id: str, after: str | None) -> AsyncIterator[tuple[TokenRecord, str]]:
        return self.apps.tokens(app_id, after)

    async def revoke_app(self, app_id: str, retention_ms: int) -> int:
        keys = [self.keys.watermarks, self.keys.sweeps]
        script = (await self.scripts()).revoke_app
        reply, pending = await self.run_durable("revoke_app", script, keys, [app_id, retention_ms])
        watermark = int(reply)
        if self._copies is not None:  # acknowledged once every copy has it (durably, if asked)
            copies_pending = await self._copies.raise_all(
                {app_id: watermark}, retention_ms, durable=True
            )
            pending = pending or copies_pending
        return _unless_pending(watermark, pending)

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


T = TypeVar("T")


def _unless_pending(outcome: T, pending: NotDurable | None) -> T:
    if pending is not None:
        pending.outcome = outcome
        raise pending
    return outcome


def _session_args(tid: TokenId, session: SessionTerms) -> list[bytes | int | str]:
    """ARGV[9..11] of issue.lua."""
    ttl = "" if session.session_ttl_ms is None else session.session_ttl_ms
    join = session.join.rid if session.join is not None and session.join.tag == tid.tag else ""
    if session.join is not None and not join:
        join = "-"  # a session of another user's hash: joins nothing here
    return [session.idle_ttl_s, ttl, join]


def _refused(kind: type[KeyspaceRefused], message: str) -> KeyspaceRefused:
    """The refusal to raise, logged once: the operator's one line saying what to do."""
    log.critical(message)
    return kind(message)


def rid_field(tid: TokenId) -> bytes:
    """The field of a token in its user's hash: its rid as 8 raw bytes (not 16 hex digits:
    the 8 bytes saved put a typical one-token hash in a smaller allocation)."""
    return bytes.fromhex(tid.rid)


def glob_escape(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)


def meta_lost_message(meta_key: str) -> str:
    return (
        f"{meta_key} is missing while user hashes exist: it was deleted or evicted, and with it "
        "the key behind user tags, so existing tokens could not be found by user. Restore it "
        "(from a backup or replica), or delete the tokenstore keys to start afresh."
    )


def layout_message(prefix: str, found: int) -> str:
    where = f"the keys under prefix {prefix!r}" if prefix else "this Redis"
    if found > LAYOUT_VERSION:
        return (
            f"{where} hold storage layout {found}, written by a newer tokenstore; this one "
            f"reads layout {LAYOUT_VERSION} only. Run the newer version."
        )
    return (
        f"{where} hold storage layout {found} (tokenstore 0.1); this version reads layout "
        f"{LAYOUT_VERSION} only and will not serve an empty registry over existing tokens. "
        "Either keep running 0.1 against them, or point this version at a fresh keyspace "
        "(another TOKENSTORE_KEY_PREFIX or Redis database) and re-issue tokens there; the old "
        "keys all expire with their tokens (README: Upgrading)."
    )
