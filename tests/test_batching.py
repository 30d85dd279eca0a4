"""The read batcher when Redis fails: every reader gets the error, and none is left over for
asyncio to log as "never retrieved" (one traceback per failed introspection in an outage)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from service.batching import ReadBatcher
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
