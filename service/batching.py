"""Auto-batching of reads: commands asked for in one event-loop tick share one pipeline.

Under load this turns N concurrent introspections into one round trip; identical commands in
a batch (the app watermarks every introspection reads) are sent once.

On a standalone Redis a batch skips redis-py's Pipeline (a Command object, a response
callback and a timeout per reply): its commands are packed and written at once on a pooled
connection, and the replies read back under one timeout for the whole batch. The connection's
retry policy applies as it does to a pipeline. RedisCluster and the embedded store take the
pipeline.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeGuard, cast

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.redis_client import AnyRedis, RedisCalls, unavailable

Command = tuple[str | bytes, ...]


def _hgetall(flat: list[bytes]) -> dict[bytes, bytes]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


# What redis-py's response callbacks make of these replies (RESP2), for the lean path.
_REPLIES: dict[str | bytes, Callable[[Any], Any]] = {"HGETALL": _hgetall}


class ReadBatcher:
    def __init__(self, client: Callable[[], Awaitable[AnyRedis]], calls: RedisCalls) -> None:
        self._client = client
        self._calls = calls
        self._pending: dict[Command, asyncio.Future[Any]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

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

    async def _send(self, batch: dict[Command, asyncio.Future[Any]]) -> None:
        try:
            client = await self._client()
            with self._calls("read_batch"):
                if _lean(client):
                    results = await _exchange(client, list(batch))
                else:
                    pipe = client.pipeline(transaction=False)
                    for command in batch:
                        pipe.execute_command(*command)
                    results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for future in batch.values():
                if not future.done():
                    _fail(future, exc)
            return
        for future, result in zip(batch.values(), results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                _fail(future, unavailable(result))
            else:
                future.set_result(result)

    async def drain(self) -> None:
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


def _lean(client: AnyRedis) -> TypeGuard[Redis]:
    """A standalone redis-py client on plain connections (not RedisCluster, not fakeredis)."""
    return type(client) is Redis and client.connection_pool.connection_class is Connection


async def _exchange(client: Redis, commands: Sequence[Command]) -> list[Any]:
    """The replies to ``commands``, sent at once on one pooled connection; an error reply is
    returned in its place, any other failure raised."""
    pool = client.connection_pool
    conn = cast(Connection, await pool.get_connection())  # type: ignore[no-untyped-call]
    try:

        async def attempt() -> list[Any]:
            return await _send_and_read(conn, commands)

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


async def _send_and_read(conn: Connection, commands: Sequence[Command]) -> list[Any]:
    await conn.send_packed_command(_pack(commands))
    results: list[Any] = []
    # One deadline for the whole batch; a read cut short by it disconnects the connection
    # (read_response closes it on any BaseException), so no reply is left for its next user.
    try:
        async with asyncio.timeout(conn.socket_timeout):
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
