"""``tokenstore serve`` with the read batcher switched off: the "naive" baseline.

``python -m bench.unbatched`` runs the service exactly as ``tokenstore serve`` does, except
that every read the batcher is asked for goes to Redis at once, as its own command on a
pooled connection (an introspection: HMGET of the token's field in its user hash and
HGETALL of the app watermarks, concurrently). DESIGN.md measured this shape at 0.27x the
bare handler.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.batching import ReadBatcher
from service.cli import main


async def _direct(batcher: ReadBatcher, command: tuple[str | bytes, ...]) -> Any:
    client = await batcher._client()
    with self_calls(batcher)("read_unbatched"):
        return await client.execute_command(*command)


def self_calls(batcher: ReadBatcher) -> Any:
    return batcher._calls


def _read(self: ReadBatcher, *command: str | bytes) -> asyncio.Future[Any]:
    return asyncio.ensure_future(_direct(self, command))


if __name__ == "__main__":
    ReadBatcher.read = _read  # type: ignore[method-assign]
    raise SystemExit(main(["serve"]))
