"""The typed boundary to redis-py: the commands the store uses, with the types they return.

redis-py types its commands as ``Awaitable[T] | T`` (one class serves sync and async), so a
caller would cast at every call; here that is done once, and the store's code is checked.
Replies are RESP2 with bytes (the client is made with ``protocol=2``, no decoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from service.redis_client import AnyRedis

# Shared functions of the user-hash scripts, put in front of each script's source.
_LIB = "lib"
_USES_LIB = frozenset({"issue", "revoke_one", "revoke_user", "rotate", "revoke_session", "touch"})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _source(name: str) -> str:
    lua = files("service") / "lua"
    body = (lua / f"{name}.lua").read_text()
    return (lua / f"{_LIB}.lua").read_text() + body if name in _USES_LIB else body


class Script:
    """A registered Lua script; its reply is raw (bytes, ints, lists, None for false)."""

    def __init__(self, script: AsyncScript) -> None:
        self._script = script

    async def __call__(self, keys: list[str], args: Sequence[str | bytes | int]) -> Any:
        return await self._script(keys=keys, args=list(args))

    @property
    def sha(self) -> str:
        """For an EVALSHA of one's own (in a pipeline, service.durability)."""
        sha: str = self._script.sha
        return sha

    async def load(self, client: AnyRedis) -> None:
        """SCRIPT LOAD (on every primary of a Cluster), after a NOSCRIPT reply."""
        await client.script_load(self._script.script)


def load_script(client: AnyRedis, name: str) -> Script:
    return Script(client.register_script(_source(name)))


class RedisOps:
    def __init__(self, client: AnyRedis) -> None:
        self._r: Any = client

    async def ping(self, node: ClusterNode | None = None) -> bool:
        """PING (of one Cluster node if given: a Cluster client otherwise pings them all)."""
        if node is None:
            return bool(await self._r.ping())
        return bool(await self._r.ping(target_nodes=node))

    async def config_values(self, name: str, node: ClusterNode | None = None) -> set[str]:
        """The values of a CONFIG parameter, over every primary of a Cluster (or ``node``);
        raises ResponseError where CONFIG is not allowed (managed services often rename it)."""
        client: Any = self._r
        if node is not None:
            reply: Any = await client.config_get(name, target_nodes=node)
        elif isinstance(client, RedisCluster):
            reply = await client.config_get(name, target_nodes=RedisCluster.PRIMARIES)
        else:
            reply = await client.config_get(name)
        # One node: {name: value}; several: {node: {name: value}}.
        replies = reply.values() if all(isinstance(v, dict) for v in reply.values()) else [reply]
        return {_text(value) for r in replies for key, value in r.items() if _text(key) == name}

    async def any_key(self, pattern: str) -> bool:
        """Whether a key matches ``pattern`` (SCAN over every primary: start-up checks only)."""
        async for _key in self._r.scan_iter(match=pattern, count=1000):
            return True
        return False

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._r.get(key)
        return value

    async def set(self, key: str, value: str, *, px: int, nx: bool = False) -> bool:
        return bool(await self._r.set(key, value, px=px, nx=nx))

    async def unlink(self, *keys: str) -> int:
        return int(await self._r.unlink(*keys))

    async def hget(self, key: str, field: str) -> bytes | None:
        value: bytes | None = await self._r.hget(key, field)
        return value

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        value: dict[bytes, bytes] = await self._r.hgetall(key)
        return value

    async def hset(self, key: str, field: str, value: str | bytes) -> int:
        return int(await self._r.hset(key, field, value))

    async def hsetnx(self, key: str, field: str, value: str | bytes) -> bool:
        return bool(await self._r.hsetnx(key, field, value))

    async def zpopmin(self, key: str, count: int) -> list[bytes]:
        popped: list[tuple[bytes, float]] = await self._r.zpopmin(key, count)
        return [member for member, _score in popped]

    async def zrangebyscore_many(self, keys: Sequence[str], low: int) -> list[list[bytes]]:
        """Members scored from ``low`` up, of each key, in one pipeline."""
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.zrangebyscore(key, low, "+inf")
        rounds: list[list[bytes]] = await pipe.execute()
        return rounds

    async def lrange(self, key: str) -> list[bytes]:
        values: list[bytes] = await self._r.lrange(key, 0, -1)
        return values

    async def xadd(self, key: str, fields: dict[str, str | int], minid: int) -> bytes:
        event_id: bytes = await self._r.xadd(key, fields, minid=minid, approximate=True)
        return event_id

    async def xinfo_stream(self, key: str) -> dict[str, Any]:
        info: dict[str, Any] = await self._r.xinfo_stream(key)
        return info

    async def xread(
        self, key: str, after: str, *, count: int, block_ms: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        streams = await self._r.xread({key: after}, count=count, block=block_ms)
        return streams[0][1] if streams else []

    async def xrange(
        self, key: str, low: str, high: str, count: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await self._r.xrange(
            key, low, high, count=count
        )
        return entries

    # --- consumer groups and dead letters of webhooks (service.webhooks) --------------------

    async def xgroup_create(self, key: str, group: str, at: str) -> bool:
        """Create the group (and the stream) at id ``at``; False if the group exists."""
        try:
            await self._r.xgroup_create(key, group, id=at, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    async def xreadgroup(
        self, key: str, group: str, consumer: str, *, count: int, block_ms: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        streams = await self._r.xreadgroup(group, consumer, {key: ">"}, count=count, block=block_ms)
        return streams[0][1] if streams else []

    async def xautoclaim(
        self, key: str, group: str, consumer: str, min_idle_ms: int, count: int, start: str = "0-0"
    ) -> tuple[str, list[tuple[bytes, dict[bytes, bytes]]]]:
        """Pending entries from ``start`` idle for ``min_idle_ms`` or more, now this
        consumer's, and the id to go on from ("0-0": the end). Entries trimmed from the stream
        meanwhile are dropped from the group by Redis."""
        reply = await self._r.xautoclaim(key, group, consumer, min_idle_ms, start, count=count)
        return _text(reply[0]), [entry for entry in reply[1] if entry[1] is not None]

    async def xack(self, key: str, group: str, entry_id: str) -> int:
        return int(await self._r.xack(key, group, entry_id))

    async def xdelete_idle_consumers(self, key: str, group: str, keep: str) -> int:
        """Delete the group's consumers other than ``keep`` that have no pending entries
        (left by processes gone); how many were deleted."""
        consumers: list[dict[str, Any]] = await self._r.xinfo_consumers(key, group)
        deleted = 0
        for consumer in consumers:
            name = _text(consumer["name"])
            if name != keep and int(consumer["pending"]) == 0:
                await self._r.xgroup_delconsumer(key, group, name)
                deleted += 1
        return deleted

    async def xinfo_group(self, key: str, group: str) -> dict[str, Any] | None:
        groups: list[dict[str, Any]] = await self._r.xinfo_groups(key)
        for info in groups:
            if _text(info["name"]) == group:
                return info
        return None

    async def zrange_after(self, key: str, after: str | None, count: int) -> list[bytes]:
        """Up to ``count`` members of a zset whose scores are all equal, in lexical order,
        from just after member ``after`` (None: from the first)."""
        low = "-" if after is None else f"({after}"
        members: list[bytes] = await self._r.zrange(key, low, "+", bylex=True, offset=0, num=count)
        return members

    async def hmget(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        if not fields:
            return []
        values: list[bytes | None] = await self._r.hmget(key, list(fields))
        return values
