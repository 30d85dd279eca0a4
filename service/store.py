"""TokenStore: every Redis read and write of the service (keys in keys.py, scripts in lua/).

Single-user changes are one Lua script on the user's slot. Reads on the introspection path go
through the per-tick batcher. Nothing here decides policy; that is service.py's job.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, cast

import orjson
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from service import tokens
from service.batching import ReadBatcher
from service.keys import APP_BUCKETS, Keys
from service.observer import NO_OBSERVER, Observer
from service.redis_client import AnyRedis, RedisCalls, RedisConnector
from service.settings import Settings
from service.tokens import TokenId

SCRIPTS = (
    "issue", "index_app", "revoke_one", "revoke_user", "list_user", "revoke_app",
    "log_user_event",
)  # fmt: skip
# The sweep and app listings read this many buckets per pipeline.
BUCKETS_PER_ROUND = 128
# A user's own event list keeps this many recent revocations (the global stream keeps all).
USER_EVENTS_KEPT = 100


class IdClash(Exception):
    """A freshly drawn record id is taken (about 1 in 2**80): draw again."""


@dataclass(frozen=True, slots=True)
class Issued:
    created_us: int
    expires_at: int
    evicted: list[tuple[str, str]]  # (rid, app id) revoked by the per-user limit


@dataclass(frozen=True, slots=True)
class StreamState:
    """What XINFO STREAM tells of the events stream; ids are ``"<ms>-<seq>"`` strings."""

    last_id: str  # the last id ever added ("0-0": none)
    first_id: str  # the oldest entry still held ("0-0": none)
    length: int
    entries_added: int  # ever; more than ``length`` once entries were trimmed


# An event of the stream: its id and its fields.
StreamEntry = tuple[str, dict[str, str]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pairs(flat: Sequence[bytes]) -> list[tuple[str, str]]:
    return [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]


def _entries(raw: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> list[StreamEntry]:
    return [
        (entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for entry_id, fields in raw
    ]


def _watermarks(raw: dict[bytes, bytes]) -> dict[str, int]:
    """app id -> revoked_before, in microseconds."""
    return {app.decode(): int(ms) for app, ms in raw.items()}


class TokenStore:
    def __init__(self, settings: Settings, observer: Observer = NO_OBSERVER) -> None:
        self.keys = Keys(settings.key_prefix)
        self.calls = RedisCalls(observer)
        self.connector = RedisConnector(settings, self._on_connect, self.calls)
        self.batcher = ReadBatcher(self.connector.client, self.calls)
        self._scripts: dict[str, AsyncScript] = {}
        self._tag_key: bytes | None = None
        # The watermarks hash as last read, and as converted: every reader of one batch gets
        # the same reply object, so it is converted once per batch, not once per read.
        self._marks: tuple[dict[bytes, bytes], dict[str, int]] = ({}, {})

    async def _on_connect(self, client: AnyRedis) -> None:
        for name in SCRIPTS:
            source = (files("service") / "lua" / f"{name}.lua").read_text()
            self._scripts[name] = client.register_script(source)
        # The tag key must outlive every token: it is created once and never expires.
        await cast(Any, client).hsetnx(self.keys.meta, "tag_key", tokens.new_tag_key())
        self._tag_key = await cast(Any, client).hget(self.keys.meta, "tag_key")

    async def client(self) -> AnyRedis:
        return await self.connector.client()

    async def tag_key(self) -> bytes:
        await self.client()
        assert self._tag_key is not None
        return self._tag_key

    async def close(self) -> None:
        await self.batcher.drain()
        await self.connector.close()

    async def _script(self, name: str, keys: list[str], args: Sequence[Any]) -> Any:
        await self.client()
        with self.calls(name):
            return await self._scripts[name](keys=keys, args=list(args))

    async def ping(self) -> bool:
        client = await self.client()
        with self.calls("ping"):
            return bool(await cast(Any, client).ping())

    # --- the hot path: batched reads --------------------------------------------------------

    async def read_token(self, tid: TokenId) -> tuple[dict[bytes, bytes], dict[str, int]]:
        """A token's hash and the current app watermarks, in one batched round trip."""
        raw = self.batcher.read("HGETALL", self.keys.token(tid))
        marks = self.batcher.read("HGETALL", self.keys.watermarks)
        return await raw, self._converted(await marks)

    def _converted(self, marks: dict[bytes, bytes]) -> dict[str, int]:
        last, converted = self._marks
        if marks is not last:
            converted = _watermarks(marks)
            self._marks = (marks, converted)
        return converted

    async def read_pointer(self, token_digest: bytes) -> TokenId | None:
        value = await self.batcher.read("GET", self.keys.pointer(token_digest))
        return tokens.parse_id(value.decode()) if value else None

    async def watermarks(self) -> dict[str, int]:
        return self._converted(await self.batcher.read("HGETALL", self.keys.watermarks))

    # --- writes -----------------------------------------------------------------------------

    async def index_app(self, app_id: str, tag: str, expires_at: int) -> None:
        key = self.keys.app_bucket_of(app_id, tag)
        await self._script("index_app", [key], [tag, expires_at, now_ms()])

    async def issue(
        self, tid: TokenId, fields: list[str | bytes], ttl_ms: int, max_tokens: int
    ) -> Issued:
        keys = [self.keys.token(tid), self.keys.user_index(tid.tag)]
        args = [tid.rid, ttl_ms, max_tokens, self.keys.token_prefix(tid.tag), *fields]
        result = await self._script("issue", keys, args)
        if result is None:
            raise IdClash
        return Issued(int(result[0]), int(result[1]), _pairs(result[2:]))

    async def claim_pointer(self, token_digest: bytes, tid: TokenId, ttl_ms: int) -> TokenId | None:
        """Point a registered token's digest at its id; returns the id it already had, if any."""
        client = cast(Any, await self.client())
        key = self.keys.pointer(token_digest)
        with self.calls("claim_pointer"):
            if await client.set(key, str(tid), px=ttl_ms, nx=True):
                return None
            existing = await client.get(key)
        return tokens.parse_id(existing.decode()) if existing else None

    async def set_pointer(self, token_digest: bytes, tid: TokenId, ttl_ms: int) -> None:
        client = cast(Any, await self.client())
        with self.calls("set_pointer"):
            await client.set(self.keys.pointer(token_digest), str(tid), px=ttl_ms)

    async def drop_pointer(self, token_digest: bytes) -> None:
        client = cast(Any, await self.client())
        with self.calls("drop_pointer"):
            await client.unlink(self.keys.pointer(token_digest))

    async def revoke_one(
        self, tid: TokenId, *, user_id: str = "", apps: Collection[str] | None = None
    ) -> tuple[str, str] | None:
        """(app, user) of the token revoked; None if there was none of ``user_id`` (""; any)
        in ``apps`` (None: any)."""
        if apps is not None and not apps:
            return None
        keys = [self.keys.token(tid), self.keys.user_index(tid.tag)]
        result = await self._script("revoke_one", keys, [tid.rid, user_id, *sorted(apps or ())])
        return (result[0].decode(), result[1].decode()) if result else None

    async def revoke_user(
        self,
        tag: str,
        *,
        user_id: str = "",
        apps: Collection[str] | None = None,
        keep_rid: str = "",
        created_before: int | None = None,
    ) -> tuple[list[tuple[str, str]], int]:
        """(rid, app) of revoked tokens of ``apps`` (None: every app), and the newest expiry of
        those apps' tokens kept."""
        if apps is not None and not apps:
            return [], 0
        before = "" if created_before is None else created_before
        args = [self.keys.token_prefix(tag), user_id, keep_rid, before, *sorted(apps or ())]
        result = await self._script("revoke_user", [self.keys.user_index(tag)], args)
        return _pairs(result[1:]), int(result[0])

    async def list_user(self, tag: str) -> list[tuple[TokenId, dict[bytes, bytes]]]:
        args = [self.keys.token_prefix(tag), now_ms()]
        flat = await self._script("list_user", [self.keys.user_index(tag)], args)
        out = []
        for i in range(0, len(flat), 2):
            values = flat[i + 1]
            raw = {values[j]: values[j + 1] for j in range(0, len(values), 2)}
            out.append((TokenId(tag, flat[i].decode()), raw))
        return out

    async def revoke_app(self, app_id: str, retention_ms: int) -> int:
        """Sets the app's watermark; returns it in microseconds."""
        keys = [self.keys.watermarks, self.keys.sweeps]
        return int(await self._script("revoke_app", keys, [app_id, retention_ms]))

    async def append_event(
        self, fields: dict[str, str | int], retention_ms: int, user_tag: str | None = None
    ) -> str:
        """Append to the events stream and, for a user's revocation, to that user's list."""
        client = cast(Any, await self.client())
        with self.calls("append_event"):
            event_id = await client.xadd(
                self.keys.events, fields, minid=now_ms() - retention_ms, approximate=True
            )
        if user_tag is not None:
            keys = [self.keys.user_events(user_tag)]
            args = [orjson.dumps(fields), USER_EVENTS_KEPT, retention_ms]
            await self._script("log_user_event", keys, args)
        return str(event_id.decode())

    async def user_events(self, tag: str) -> list[dict[str, Any]]:
        """The user's recent revocation events, newest first."""
        client = cast(Any, await self.client())
        with self.calls("user_events"):
            raw = await client.lrange(self.keys.user_events(tag), 0, -1)
        return [orjson.loads(entry) for entry in raw]

    # --- the events stream, read by the revocation feed -------------------------------------

    async def event_stream(self) -> StreamState | None:
        """The state of the events stream, or None if it does not exist (yet)."""
        client = cast(Any, await self.client())
        with self.calls("event_stream"):
            try:
                info = await client.xinfo_stream(self.keys.events)
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None
                raise
        return StreamState(
            last_id=info["last-generated-id"].decode(),
            first_id=info["recorded-first-entry-id"].decode(),
            length=int(info["length"]),
            entries_added=int(info["entries-added"]),
        )

    async def read_events(self, after: str, block_ms: int, count: int) -> list[StreamEntry]:
        """Events after id ``after``, waiting up to ``block_ms`` for one (XREAD BLOCK)."""
        client = cast(Any, await self.client())
        with self.calls("read_events"):
            streams = await client.xread({self.keys.events: after}, count=count, block=block_ms)
        return _entries(streams[0][1]) if streams else []

    async def event_range(self, after: str, last: str, count: int) -> list[StreamEntry]:
        """At most ``count`` events with ids in (``after``, ``last``], oldest first."""
        client = cast(Any, await self.client())
        with self.calls("event_range"):
            return _entries(await client.xrange(self.keys.events, f"({after}", last, count=count))

    # --- app indexes: listing and sweeping ---------------------------------------------------

    async def app_users(self, app_id: str, first_bucket: int) -> list[tuple[int, list[str]]]:
        """The user tags of buckets ``first_bucket..`` (one round), each bucket's tags sorted."""
        client = await self.client()
        last = min(first_bucket + BUCKETS_PER_ROUND, APP_BUCKETS)
        with self.calls("app_users"):
            pipe = client.pipeline(transaction=False)
            for bucket in range(first_bucket, last):
                pipe.zrangebyscore(self.keys.app_bucket(app_id, bucket), now_ms(), "+inf")
            rounds = await pipe.execute()
        return [
            (bucket, sorted(tag.decode() for tag in tags))
            for bucket, tags in zip(range(first_bucket, last), rounds, strict=True)
        ]

    async def pop_app_users(self, app_id: str, bucket: int, count: int) -> list[str]:
        client = cast(Any, await self.client())
        with self.calls("pop_app_users"):
            popped = await client.zpopmin(self.keys.app_bucket(app_id, bucket), count)
        return [tag.decode() for tag, _score in popped]

    async def pending_sweeps(self) -> dict[str, int]:
        client = cast(Any, await self.client())
        with self.calls("pending_sweeps"):
            return _watermarks(await client.hgetall(self.keys.sweeps))

    async def finish_sweep(self, app_id: str, watermark: int) -> None:
        client = cast(Any, await self.client())
        with self.calls("finish_sweep"):
            # A newer revocation of the same app during the sweep leaves its own entry.
            if await client.hget(self.keys.sweeps, app_id) == str(watermark).encode():
                await client.hdel(self.keys.sweeps, app_id)
