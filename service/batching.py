"""Auto-batching of reads: commands asked for in one event-loop tick share one pipeline.

Under load this turns N concurrent introspections into one round trip; identical commands in
a batch (the app watermarks every introspection reads) are sent once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from service.redis_client import AnyRedis, RedisCalls, unavailable

Command = tuple[str | bytes, ...]


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


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    future.set_exception(exc)
    # Whoever awaits it still gets the exception. But a reader may no longer be waiting (its
    # other read of the batch failed first, as in read_token, or it was cancelled): without
    # this, asyncio logs a "Future exception was never retrieved" traceback for each one.
    future.exception()
