"""Reads on a Redis Cluster: each node's part of a batch on its own, the app watermarks'
copies (one per node), and redis-py's own failures counted as Redis failures, not bugs."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
import uvloop
from helpers import Client, issue
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import SlotNotCoveredError
from redis_servers import HOST, RedisServer
from redis_servers import RedisCluster as Cluster

from service.api.responses import STORE
from service.batching import ReadBatcher
from service.errors import Unavailable
from service.keys import WATERMARK_COPIES, Keys
from service.redis_client import AnyRedis, RedisCalls
from service.watermark_copies import COPIES_FIELD

# --- redis-py's failures -------------------------------------------------------------------


async def test_a_connection_closed_under_redis_py_is_a_redis_failure() -> None:
    # What a Cluster failover did: redis-py closed a connection another task was writing on.
    with pytest.raises(Unavailable) as raised, RedisCalls()("op"):
        await Connection()._send_packed_command([b"PING\r\n"])
    assert isinstance(raised.value.__cause__, AttributeError)


def test_a_transport_closed_under_redis_py_on_uvloop_is_a_redis_failure(
    redis_server: RedisServer,
) -> None:
    # The other failover error: uvloop refuses a write on a closed transport (RuntimeError
    # from its own handle, under redis-py's frames).
    async def write_on_a_closed_transport() -> BaseException | None:
        conn = Connection(host=HOST, port=redis_server.port)
        await cast(Any, conn).connect()
        cast(Any, conn)._writer.transport.abort()
        await asyncio.sleep(0.01)
        try:
            with RedisCalls()("op"):
                await conn._send_packed_command([b"PING\r\n"])
        except Unavailable as exc:
            return exc.__cause__
        finally:
            await conn.disconnect()
        return None

    assert isinstance(uvloop.run(write_on_a_closed_transport()), RuntimeError)


async def test_a_slot_without_a_node_is_a_redis_failure() -> None:
    # Not a RedisError: what the Cluster client raises while a failover leaves a slot unserved.
    with pytest.raises(Unavailable), RedisCalls()("op"):
        raise SlotNotCoveredError("Slot 1 not covered by the cluster.")


async def test_the_same_error_in_our_own_code_stays_a_bug() -> None:
    gone: Any = None
    with pytest.raises(AttributeError), RedisCalls()("op"):
        await asyncio.sleep(0)
        gone.writelines([b"PING\r\n"])


# --- a batch split by node -----------------------------------------------------------------


def _key_on(cluster: Cluster, port: int, prefix: str) -> str:
    for i in range(1000):
        key = f"{prefix}{{{i}}}"
        if cluster.master_of_slot(key_slot(key.encode())) == port:
            return key
    raise AssertionError(f"no key found on {port}")


async def test_a_paused_node_fails_only_its_own_reads(redis_cluster: Cluster) -> None:
    redis_cluster.flush()
    slow, *others = redis_cluster.ports
    slow_key = _key_on(redis_cluster, slow, "k")
    other_keys = [_key_on(redis_cluster, port, "k") for port in others]
    client = RedisCluster.from_url(redis_cluster.url, protocol=2, socket_timeout=5)
    pauser = Redis(port=slow)
    try:
        for key in [slow_key, *other_keys]:
            await client.set(key, key)

        async def opened() -> AnyRedis:
            return client

        batcher = ReadBatcher(opened, RedisCalls(), deadline=0.3)
        await cast(Any, pauser).execute_command("CLIENT", "PAUSE", "3000", "ALL")
        started = time.monotonic()
        slow_read = batcher.read("GET", slow_key)
        others_read = asyncio.gather(*(batcher.read("GET", key) for key in other_keys))
        assert await others_read == [key.encode() for key in other_keys]
        assert time.monotonic() - started < 0.25  # not held up by the paused node
        with pytest.raises(Unavailable):
            await slow_read
        assert time.monotonic() - started < 2.0  # its deadline, not the socket timeout
        await cast(Any, pauser).execute_command("CLIENT", "UNPAUSE")
        assert await batcher.read("GET", slow_key) == slow_key.encode()
        await batcher.drain()
    finally:
        await cast(Any, pauser).execute_command("CLIENT", "UNPAUSE")
        await pauser.aclose()
        await client.aclose()


# --- the app watermarks' copies --------------------------------------------------------------


@pytest.fixture
def backend() -> str:
    return "cluster"


async def _copies(redis: AnyRedis) -> list[dict[bytes, bytes]]:
    keys = Keys("ts:").watermark_copies()
    return [await cast(Any, redis).hgetall(key) for key in keys]


async def test_every_node_holds_a_copy_and_reads_its_own(
    client: Client, redis: AnyRedis, redis_cluster: Cluster
) -> None:
    keys = Keys("ts:")
    copies = keys.watermark_copies()
    assert len(set(copies)) == WATERMARK_COPIES and copies[0] == keys.watermarks
    holders = {redis_cluster.master_of_slot(key_slot(key.encode())) for key in copies}
    assert holders == set(redis_cluster.ports)
    near = client.app[STORE].marks.copies
    assert near is not None
    for i in range(50):
        user = keys.user(f"{i:016x}")
        copy = near.near(user)
        assert redis_cluster.master_of_slot(
            key_slot(copy.encode())
        ) == redis_cluster.master_of_slot(key_slot(user.encode()))


async def test_an_app_revocation_is_in_every_copy(client: Client, redis: AnyRedis) -> None:
    issued = [await issue(client, f"user-{i}", "gone") for i in range(24)]
    kept = await issue(client, "user-0", "kept")
    response = await client.delete("/v1/apps/gone/tokens")
    assert response.status == 200
    copies = await _copies(redis)
    assert len({copy[b"gone"] for copy in copies}) == 1  # the same watermark, everywhere
    for token in issued:  # users on every node, each read with its node's copy
        answer = await client.post("/v1/introspect", json={"token": token["token"]})
        assert await answer.json() == {"active": False}
    answer = await client.post("/v1/introspect", json={"token": kept["token"]})
    assert (await answer.json())["active"] is True


async def test_a_revocation_some_copy_missed_is_not_acknowledged(
    client: Client, redis: AnyRedis
) -> None:
    await issue(client, "user-0", "gone")
    broken = Keys("ts:").watermark_copies()[5]
    await cast(Any, redis).set(broken, "not a hash")  # its merge script fails
    response = await client.delete("/v1/apps/gone/tokens")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"


async def test_watermarks_from_before_the_copies_are_copied_before_serving(
    client: Client, redis: AnyRedis
) -> None:
    token = await issue(client, "user-0", "old")
    # A keyspace written before the copies: one watermarks hash, no copies, no meta field.
    keys = Keys("ts:")
    later = str(int(time.time() * 1_000_000) + 1_000_000)
    await cast(Any, redis).hset(keys.watermarks, "old", later)
    await cast(Any, redis).hdel(keys.meta, COPIES_FIELD)
    store = client.app[STORE]
    await store.connector.close()  # the next call connects again, as a new process would
    answer = await client.post("/v1/introspect", json={"token": token["token"]})
    assert await answer.json() == {"active": False}
    reconnected = await store.client()
    assert all(copy.get(b"old") == later.encode() for copy in await _copies(reconnected))
    marked = await cast(Any, reconnected).hget(keys.meta, COPIES_FIELD)
    assert marked == str(WATERMARK_COPIES).encode()
