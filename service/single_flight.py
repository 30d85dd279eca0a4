"""SingleFlight: one run of a fetch at a time, shared by concurrent callers, and a floor on
how often a caller that merely met an unknown key may start one (so JWTs with made-up kids
cannot make us hammer the other side). Used for a JWKS URL (service/jwks_fetch.py) and for a
gateway's copy of the service's keys (service/client.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self.task: asyncio.Task[T] | None = None
        self._last_start = -float("inf")

    async def run(
        self, fetch: Callable[[], Coroutine[Any, Any, T]], min_interval: float = 0.0
    ) -> T | None:
        """The result of the run under way, else of a new one; None if the last one started
        less than ``min_interval`` seconds ago."""
        if self.task is None:
            if time.monotonic() - self._last_start < min_interval:
                return None
            self._last_start = time.monotonic()
            self.task = asyncio.create_task(fetch())
            self.task.add_done_callback(self._done)
        return await asyncio.shield(self.task)

    def _done(self, _task: asyncio.Task[T]) -> None:
        self.task = None
