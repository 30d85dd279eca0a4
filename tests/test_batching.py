"""The read batcher when Redis fails: every reader gets the error, and none is left over for
asyncio to log as "never retrieved" (one traceback per failed introspection in an outage)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, cast

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_servers import RedisServer

from service.batching import ReadBatcher, _pack
from service.errors import Unavailable
from service.redis_client import AnyRedis, RedisCalls


async def _read_as_read_token_does(logged: list[dict[str, Any]]) -> None:
    async def unreachable() -> AnyRedis:
        # What TokenStore.client raises with Redis down. (Not a redis error turned into it
        # here: its log record would keep the futures alive, in pytest's log capture.)
        raise Unavailable("the token store is unavailable; retry shortly")

    asyncio.get_running_loop().set_exception_handler(lambda _, context: logged.append(context))
    batcher = ReadBatcher(unreachable, RedisCalls())
    # Two reads; the second is awaited only if the first works (TokenStore.read_token).
    first, second = batcher.read("HGETALL", "token"), batcher.read("HGETALL", "marks")
    try:
        await first
        raised = False
    except Unavailable:
        raised = True
    assert raised
    await batcher.drain()
    assert second.done() and not second.cancelled()  # failed too, never awaited


def test_a_failed_batch_leaves_no_exception_unretrieved() -> None:
    logged: list[dict[str, Any]] = []
    asyncio.run(_read_as_read_token_does(logged))  # a loop of its own, gone with its futures
    gc.collect()
    assert logged == []


# --- the lean path on a standalone Redis (no redis-py Pipeline) -----------------------------


async def _standalone(url: str, seconds: float = 2.0) -> tuple[Redis, ReadBatcher]:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=4, timeout=seconds, socket_timeout=seconds, protocol=2
    )
    client = Redis.from_pool(pool)

    async def opened() -> AnyRedis:
        return client

    return client, ReadBatcher(opened, RedisCalls())


def _in_use(client: Redis) -> int:
    return len(cast(Any, client.connection_pool)._in_use_connections)


async def test_lean_batch_answers_as_a_pipeline_does(redis_server: RedisServer) -> None:
    redis_server.flush()
    client, batcher = await _standalone(redis_server.url)
    try:
        await client.hset("h", mapping={"a": "1", "b": "2"})
        await client.set("s", "text")
        commands: list[tuple[str, ...]] = [
            ("HGETALL", "h"), ("HGETALL", "none"), ("GET", "s"), ("GET", "none"),
            ("HMGET", "h", "a", "zz"),
        ]  # fmt: skip
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        expected = await pipe.execute()
        got = await asyncio.gather(*(batcher.read(*command) for command in commands))
        assert got == expected == [{b"a": b"1", b"b": b"2"}, {}, b"text", None, [b"1", None]]
        assert _in_use(client) == 0
    finally:
        await client.aclose()


async def test_an_error_reply_fails_its_reader_only(redis_server: RedisServer) -> None:
    redis_server.flush()
    client, batcher = await _standalone(redis_server.url)
    try:
        await client.set("s", "text")
        await client.hset("h", "a", "1")
        wrong = batcher.read("HGETALL", "s")  # WRONGTYPE
        right = batcher.read("HGETALL", "h")
        with pytest.raises(Unavailable):
            await wrong
        assert await right == {b"a": b"1"}
        # The connection stayed in step: the next batch reads its own replies.
        assert await batcher.read("GET", "s") == b"text"
        assert _in_use(client) == 0
    finally:
        await client.aclose()


async def test_a_stalled_batch_times_out_and_releases_its_connection(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    client, batcher = await _standalone(redis_server.url, seconds=0.2)
    other = Redis.from_url(redis_server.url)
    try:
        await client.set("s", "text")
        await cast(Any, other).execute_command("CLIENT", "PAUSE", "600", "ALL")
        with pytest.raises(Unavailable) as raised:
            await batcher.read("GET", "s")
        assert isinstance(raised.value.__cause__, RedisTimeoutError)
        assert _in_use(client) == 0
        await asyncio.sleep(0.6)
        assert await batcher.read("GET", "s") == b"text"  # on a fresh connection
    finally:
        await cast(Any, other).execute_command("CLIENT", "UNPAUSE")
        await other.aclose()
        await client.aclose()


async def test_a_cancelled_batch_releases_and_closes_its_connection(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    client, batcher = await _standalone(redis_server.url)
    other = Redis.from_url(redis_server.url)
    try:
        await client.set("s", "text")
        await cast(Any, other).execute_command("CLIENT", "PAUSE", "400", "ALL")
        reading = batcher.read("GET", "s")
        await asyncio.sleep(0.1)  # the batch is sent and waits for its reply
        (task,) = batcher._in_flight
        task.cancel()
        await batcher.drain()
        assert reading.cancelled() or not reading.done()
        assert _in_use(client) == 0
        await asyncio.sleep(0.4)
        assert await batcher.read("GET", "s") == b"text"  # no stale reply was left behind
    finally:
        await cast(Any, other).execute_command("CLIENT", "UNPAUSE")
        await other.aclose()
        await client.aclose()


def test_the_redis_py_internals_the_lean_path_uses_are_there() -> None:
    """The lean path (batching.py) calls these redis-py internals; an upgrade that renames or
    drops one fails here first (pyproject.toml also bounds redis-py below 9)."""
    import inspect

    from redis.asyncio.connection import BlockingConnectionPool

    assert inspect.iscoroutinefunction(BlockingConnectionPool.get_connection)
    assert inspect.iscoroutinefunction(BlockingConnectionPool.release)
    assert inspect.iscoroutinefunction(Connection.send_packed_command)
    assert "timeout" in inspect.signature(Connection.read_response).parameters
    assert inspect.iscoroutinefunction(Connection.disconnect)
    connection = Connection(retry=None)
    assert {"retry", "host", "port"} <= set(vars(connection))
    assert hasattr(connection, "socket_timeout")  # a property in redis-py 8, an attribute before
    # On a Cluster (ReadBatcher._send_by_node, WatermarkCopies): a node per slot, its pool.
    from redis.asyncio.cluster import ClusterNode, NodesManager

    assert callable(ClusterNode.acquire_connection) and callable(ClusterNode.release)
    assert inspect.iscoroutinefunction(NodesManager.initialize)
    assert "slot" in inspect.signature(NodesManager.get_node_from_slot).parameters
    assert "slots_cache" in inspect.getsource(NodesManager.__init__)


def test_lean_batches_are_packed_as_redis_py_packs_them() -> None:
    commands: list[tuple[str | bytes, ...]] = [
        ("HMGET", "ts:h:{0123456789abcdef}", "u", "0123456789abcdef"),
        ("GET", b"ts:p:" + bytes(range(256))),
        ("GET", "é" * 7000),
        ("X",),
        ("SET", b"", ""),
    ]
    assert _pack(commands) == b"".join(Connection().pack_commands(commands))
