"""Load for fault tests (and bench.cluster_faults): a few clients per kind of call, every
answer recorded with its time, and tokens issued on every shard of a Cluster.

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
from redis.crc import key_slot
from redis_servers import RedisCluster

from service import tokens
from service.keys import Keys

USERS = 36
REVOKED_APP_USERS = 9
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


# --- a Cluster's shards -------------------------------------------------------------------


@dataclass
class ShardTokens:
    by_master: dict[int, list[str]]
    revoked: list[str]

    def on(self, master: int) -> list[str]:
        return self.by_master[master]

    def off(self, master: int) -> list[str]:
        return [t for m, ts in self.by_master.items() if m != master for t in ts]


async def _issue(session: aiohttp.ClientSession, url: str, user: str, app: str) -> str:
    body = {"user_id": user, "app_id": app}
    async with session.post(f"{url}/v1/tokens", json=body) as response:
        assert response.status == 201, await response.text()
        token: str = (await response.json())["token"]
        return token


async def issue_on_every_shard(cluster: RedisCluster, url: str) -> ShardTokens:
    """Tokens of users on every master, and revoked ones: a whole app's and one by one."""
    keys = Keys("ts:")
    async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
        live = [await _issue(session, url, f"user-{i}", "app") for i in range(USERS)]
        gone = [await _issue(session, url, f"user-{i}", "gone") for i in range(REVOKED_APP_USERS)]
        async with session.delete(f"{url}/v1/apps/gone/tokens") as response:
            assert response.status == 200
        one_by_one = live[-REVOKED_APP_USERS:]
        for token in one_by_one:
            async with session.post(f"{url}/v1/revoke", json={"token": token}) as response:
                assert response.status == 200
    by_master: dict[int, list[str]] = {port: [] for port in cluster.masters()}
    for token in live[:-REVOKED_APP_USERS]:
        tid = tokens.parse_minted(token)
        assert tid is not None
        slot = key_slot(keys.user(tid.tag).encode())
        by_master[cluster.master_of_slot(slot)].append(token)
    assert all(by_master.values()), "some master holds no token: issue more"
    cluster.wait_replicated()  # what replication lag may lose is not this test's subject
    return ShardTokens(by_master, gone + one_by_one)


def shard_load(url: str, tokens_: ShardTokens, victim: int) -> Load:
    """Introspections of the victim master's tokens, of the others' and of revoked tokens
    (on every shard), issues and probes, each kind with workers of its own."""
    load = Load(url)
    load.introspect("healthy", tokens_.off(victim), workers=4)
    load.introspect("victim", tokens_.on(victim), workers=2)
    load.introspect("revoked", tokens_.revoked, workers=1)
    load.issue(workers=1)
    load.probe()
    return load
