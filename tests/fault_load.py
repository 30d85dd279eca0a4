"""Load for fault tests: a few clients per kind of call, every answer recorded with its time.

Each kind (healthy tokens, the victim shard's tokens, revoked tokens, issues, probes) has its
own workers, so that calls held up by a fault never slow the calls that should not be.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from helpers import ADMIN_HEADERS

# One call: (status, JSON body, Retry-After header) for the i-th call of a kind.
Call = Callable[[aiohttp.ClientSession, int], Awaitable[tuple[int, Any, str | None]]]


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str
    started: float  # time.monotonic()
    seconds: float
    status: int
    body: Any
    retry_after: str | None


@dataclass
class Load:
    url: str
    answers: list[Answer] = field(default_factory=list)
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def introspect(self, kind: str, tokens: Sequence[str], workers: int) -> None:
        async def call(session: aiohttp.ClientSession, i: int) -> tuple[int, Any, str | None]:
            body = {"token": tokens[i % len(tokens)]}
            async with session.post(f"{self.url}/v1/introspect", json=body) as response:
                return response.status, await response.json(), response.headers.get("Retry-After")

        self._start(kind, call, workers)

    def issue(self, workers: int) -> None:
        async def call(session: aiohttp.ClientSession, i: int) -> tuple[int, Any, str | None]:
            body = {"user_id": f"load-{i}", "app_id": "load"}
            async with session.post(f"{self.url}/v1/tokens", json=body) as response:
                return response.status, await response.json(), response.headers.get("Retry-After")

        self._start("issue", call, workers)

    def probe(self) -> None:
        async def call(session: aiohttp.ClientSession, i: int) -> tuple[int, Any, str | None]:
            async with session.get(f"{self.url}/readyz") as response:
                return response.status, await response.json(), None

        self._start("readyz", call, 1)

    def _start(self, kind: str, call: Call, workers: int) -> None:
        async def work(first: int) -> None:
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(headers=ADMIN_HEADERS, timeout=timeout) as session:
                i = first
                while not self._stopping:
                    started = time.monotonic()
                    status, body, retry_after = await call(session, i)
                    seconds = time.monotonic() - started
                    self.answers.append(Answer(kind, started, seconds, status, body, retry_after))
                    i += workers
                    if status >= 500:
                        await asyncio.sleep(0.01)  # as a client backing off, and less noise

        self._tasks += [asyncio.create_task(work(n)) for n in range(workers)]

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*self._tasks)

    def of(self, kind: str, start: float = 0.0, end: float = float("inf")) -> list[Answer]:
        """The answers to calls of ``kind`` started in [start, end)."""
        return [a for a in self.answers if a.kind == kind and start <= a.started < end]

    def first_ok_after(self, kind: str, moment: float) -> float | None:
        """When the first call of ``kind`` started after ``moment`` that answered 2xx."""
        return next(
            (a.started for a in self.of(kind, moment) if 200 <= a.status < 300),
            None,
        )


def statuses(answers: Sequence[Answer]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answer in answers:
        counts[answer.status] = counts.get(answer.status, 0) + 1
    return counts


def median_seconds(answers: Sequence[Answer]) -> float:
    return statistics.median(a.seconds for a in answers)


def summary(load: Load) -> str:
    """Statuses by kind: the message of a failed assertion."""
    kinds = sorted({a.kind for a in load.answers})
    return "; ".join(f"{kind}: {statuses(load.of(kind))}" for kind in kinds)
