"""Auto-batching of reads: commands asked for in one event-loop tick share one round trip.

Under load this turns N concurrent introspections into one round trip; identical commands in
a batch (the app watermarks every introspection reads) are sent once.

On a standalone Redis a batch skips redis-py's Pipeline (a Command object, a response
callback and a timeout per reply): its commands are packed and written at once on a pooled
connection, and the replies read back under one deadline for the whole batch. The
connection's retry policy applies as it does to a pipeline.

On a Redis Cluster a batch is split by node (the slot map of redis-py's client) and each part
is sent the same way on a connection of its node, with a deadline of its own: a stopped or
dead node fails only the reads of the keys it serves (503), and the other parts answer at
once. A redirect reply (MOVED, ASK: a slot changed hands) is followed through the client,
which learns the new slot map; a node that fails or times out makes the client reload the map
in the background (a failover promotes a replica elsewhere). The embedded store takes
redis-py's pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeGuard, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection
from redis.exceptions import AskError, MovedError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.redis_client import AnyRedis, RedisCalls, is_redis_failure, unavailable

Command = tuple[str | bytes, ...]
Batch = dict[Command, asyncio.Future[Any]]
log = logging.getLogger(__name__)
# A Cluster's slot map is reloaded at most this often (seconds) after a node failed.
MAP_RELOAD_INTERVAL = 0.5


def _hgetall(flat: list[bytes]) -> dict[bytes, bytes]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


# What redis-py's response callbacks make of these replies (RESP2), for the lean path.
_REPLIES: dict[str | bytes, Callable[[Any], Any]] = {"HGETALL": _hgetall}


class ReadBatcher:
    """``deadline``: seconds a batch (on a Cluster, each node's part) may take; None: the
    connection's socket timeout."""

    def __init__(
        self,
        client: Callable[[], Awaitable[AnyRedis]],
        calls: RedisCalls,
        deadline: float | None = None,
    ) -> None:
        self._client = client
        self._calls = calls
        self._deadline = deadline
        self._pending: Batch = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._map_reloaded_at = -math.inf

    def read(self, *command: str | bytes) -> asyncio.Future[Any]:
        future = self._pending.get(command)
        if future is None:
            loop = asyncio.get_running_loop()
            if not self._pending:
                loop.call_soon(self._flush)
            future = self._pending[command] = loop.create_future()
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        task = asyncio.create_task(self._send(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: Batch) -> None:
        try:
            client = await self._client()
        except Exception as exc:
            _fail_all(batch, exc)
            return
        if isinstance(client, RedisCluster):
            await self._send_by_node(client, batch)
            return
        try:
            with self._calls("read_batch"):
                if _lean(client):
                    results = await _exchange(client, list(batch), self._deadline)
                else:
                    pipe = client.pipeline(transaction=False)
                    for command in batch:
                        pipe.execute_command(*command)
                    results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            _fail_all(batch, exc)
            return
        _answer(batch, results)

    async def _send_by_node(self, client: RedisCluster, batch: Batch) -> None:
        parts: dict[str, tuple[ClusterNode, Batch]] = {}
        try:
            for command, future in batch.items():
                node = client.nodes_manager.get_node_from_slot(client.keyslot(command[1]))
                parts.setdefault(node.name, (node, {}))[1][command] = future
        except Exception as exc:  # no node serves a slot (a failover under way)
            if is_redis_failure(exc):
                await self._reload_map(client)
                exc = unavailable(exc)
            _fail_all(batch, exc)  # every reader gets an answer, whatever happened
            return
        await asyncio.gather(*(self._send_to_node(client, n, p) for n, p in parts.values()))

    async def _send_to_node(self, client: RedisCluster, node: ClusterNode, part: Batch) -> None:
        try:
            with self._calls("read_batch"):
                try:
                    results = await _node_exchange(node, list(part), self._deadline)
                except Exception as exc:
                    if is_redis_failure(exc):
                        await self._reload_map(client)
                    raise
                for i, (command, result) in enumerate(zip(part, results, strict=True)):
                    if isinstance(result, (MovedError, AskError)):
                        # The slot moved (a failover): the client follows and learns the map.
                        results[i] = await client.execute_command(*command)
        except Exception as exc:
            _fail_all(part, exc)
            return
        _answer(part, results)

    async def _reload_map(self, client: RedisCluster) -> None:
        """Have the client reload the Cluster's slot map, in the background and not too often:
        after a failover the slots of the lost node are served by a promoted replica."""
        now = time.monotonic()
        if now - self._map_reloaded_at < MAP_RELOAD_INTERVAL:
            return
        self._map_reloaded_at = now
        task = asyncio.create_task(_reload(client))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def drain(self) -> None:
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


async def _reload(client: RedisCluster) -> None:
    try:
        await client.nodes_manager.initialize()
    except Exception as exc:  # the next failed read asks again
        if not is_redis_failure(exc):
            raise
        log.info("cluster slot map not reloaded: %s", type(exc).__name__)


def _answer(batch: Batch, results: Sequence[Any]) -> None:
    for future, result in zip(batch.values(), results, strict=True):
        if future.done():
            continue
        if isinstance(result, Exception):
            _fail(future, unavailable(result))
        else:
            future.set_result(result)


def _fail_all(batch: Batch, exc: BaseException) -> None:
    for future in batch.values():
        if not future.done():
            _fail(future, exc)


def _lean(client: AnyRedis) -> TypeGuard[Redis]:
    """A standalone redis-py client on plain connections (not RedisCluster, not fakeredis)."""
    return type(client) is Redis and client.connection_pool.connection_class is Connection


async def _exchange(
    client: Redis, commands: Sequence[Command], deadline: float | None
) -> list[Any]:
    """The replies to ``commands``, sent at once on one pooled connection; an error reply is
    returned in its place, any other failure raised."""
    pool = client.connection_pool
    conn = cast(Connection, await pool.get_connection())  # type: ignore[no-untyped-call]
    try:

        async def attempt() -> list[Any]:
            return await _send_and_read(conn, commands, deadline or conn.socket_timeout)

        async def failed(error: Exception) -> None:
            await conn.disconnect()

        results: list[Any] = await conn.retry.call_with_retry(attempt, failed)
        return results
    finally:
        # As redis-py's Pipeline.reset: a second cancel must not split the pool's bookkeeping.
        await asyncio.shield(pool.release(conn))


def _pack(commands: Sequence[Command]) -> bytes:
    """The commands in RESP, as Connection.pack_commands writes them (str as UTF-8)."""
    out = bytearray()
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for arg in command:
            data = arg.encode() if isinstance(arg, str) else arg
            out += b"$%d\r\n%b\r\n" % (len(data), data)
    return bytes(out)


async def _node_exchange(
    node: ClusterNode, commands: Sequence[Command], deadline: float | None
) -> list[Any]:
    """As _exchange, on a connection of one Cluster node; its deadline covers connecting too
    (a stopped node accepts connections, then never answers)."""
    conn = node.acquire_connection()
    try:
        async with asyncio.timeout(deadline or conn.socket_timeout):
            return await _send_and_read(conn, commands, None)
    except BaseException as exc:
        # Whatever was cut short (connecting, sending, reading), no reply may be left over
        # for the connection's next user: it connects afresh.
        await conn.disconnect(nowait=True)
        if isinstance(exc, TimeoutError):
            raise RedisTimeoutError(f"Timeout reading from {node.name}") from None
        raise
    finally:
        node.release(conn)


async def _send_and_read(
    conn: Connection, commands: Sequence[Command], deadline: float | None
) -> list[Any]:
    """``deadline``: seconds for the replies (None: the caller bounds the whole exchange)."""
    await conn.send_packed_command(_pack(commands))
    results: list[Any] = []
    # One deadline for the whole batch; a read cut short by it disconnects the connection
    # (read_response closes it on any BaseException), so no reply is left for its next user.
    try:
        async with asyncio.timeout(deadline):
            for command in commands:
                try:
                    reply = await conn.read_response(timeout=math.inf)
                except ResponseError as exc:  # the reply was read whole: the stream is in step
                    results.append(exc)
                    continue
                convert = _REPLIES.get(command[0])
                results.append(reply if convert is None else convert(reply))
    except TimeoutError:
        # What a pipeline raises, so that the connection's retry policy treats it alike.
        raise RedisTimeoutError(f"Timeout reading from {conn.host}:{conn.port}") from None
    return results


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    future.set_exception(exc)
    # Whoever awaits it still gets the exception. But a reader may no longer be waiting (its
    # other read of the batch failed first, as in read_token, or it was cancelled): without
    # this, asyncio logs a "Future exception was never retrieved" traceback for each one.
    future.exception()
