"""Mixed, open-loop HTTP load on a tokenstore process, judging every answer as it arrives.

Requests start at a fixed rate whatever the answers (so a stalled Redis piles them up, as real
traffic would), up to a cap of requests in flight. Each introspection is judged against what is
known of its token: one whose revocation was acknowledged before the request was sent must read
inactive; one for which no revocation had been sent when the answer came must read active. A
token whose revocation failed (it may or may not have happened) is no longer judged.

Used by the fault tests and by ``bench/soak.py``, which aggregates the answers as they come.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

REQUEST_TIMEOUT = 30.0  # far above any bound asserted: a hung request shows as TimeoutError
CATCH_UP = 1.0  # a dispatcher later than this (a starved CPU) drops the backlog, not bursts it


@dataclass(slots=True)
class Tracked:
    value: str
    id: str
    revoke_sent: float = math.inf
    revoked_at: float = math.inf


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str  # "introspect", "issue" or "revoke"
    sent: float  # time.monotonic()
    done: float
    status: int | None  # None: no HTTP answer, see error
    error: str | None = None  # the client's exception class
    retry_after: str | None = None
    # "revoked_active", "live_inactive", "revoke_missed" (200 without the live token's id),
    # "active_in_error" (an error body that says anything about "active")
    wrong: str | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


@dataclass(frozen=True, slots=True)
class Mix:
    issue: float = 0.05
    revoke: float = 0.05
    users: int = 1000
    app_id: str = "load"


class MixedLoad:
    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        on_answer: Callable[[Answer], None],
        *,
        rate: float,
        mix: Mix = Mix(),
        max_in_flight: int = 500,
        pool_cap: int = 5000,
        seed: int = 0,
    ) -> None:
        self.url = url
        self.headers = dict(headers)
        self.on_answer = on_answer
        self.rate = rate
        self.mix = mix
        self.max_in_flight = max_in_flight
        self.pool_cap = pool_cap
        self.skipped = 0  # not sent: max_in_flight requests were waiting already
        self._rng = random.Random(seed)
        self._pool: list[Tracked] = []  # introspected: live and revoked
        self._live: list[Tracked] = []  # no revocation sent yet: candidates to revoke

    def track(self, value: str, token_id: str, *, revoked: bool = False) -> None:
        """A token to introspect; ``revoked``: its revocation was acknowledged already."""
        token = Tracked(value, token_id)
        if revoked:
            token.revoke_sent = token.revoked_at = -math.inf
        else:
            self._live.append(token)
        if len(self._pool) < self.pool_cap:
            self._pool.append(token)
        else:
            self._pool[self._rng.randrange(self.pool_cap)] = token

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self.headers
        ) as session:
            in_flight: set[asyncio.Task[None]] = set()
            start, sent = time.monotonic(), 0
            while not stop.is_set():
                sent += 1
                delay = start + sent / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -CATCH_UP:
                    start, sent = time.monotonic(), 0
                if len(in_flight) >= self.max_in_flight:
                    self.skipped += 1
                    continue
                task = asyncio.create_task(self._one(session))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        draw = self._rng.random()
        if draw < self.mix.issue or not self._pool:
            await self._issue(session)
        elif draw < self.mix.issue + self.mix.revoke and self._live:
            await self._revoke(session)
        else:
            await self._introspect(session)

    async def _post(
        self, session: aiohttp.ClientSession, kind: str, path: str, body: Any
    ) -> tuple[Answer, Any]:
        sent = time.monotonic()
        try:
            async with session.post(self.url + path, json=body) as response:
                data = await response.json(content_type=None)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Answer(kind, sent, time.monotonic(), None, type(exc).__name__), None
        wrong = "active_in_error" if status >= 300 and "active" in data else None
        return Answer(kind, sent, time.monotonic(), status, None, retry_after, wrong), data

    async def _introspect(self, session: aiohttp.ClientSession) -> None:
        token = self._rng.choice(self._pool)
        body = {"token": token.value}
        answer, data = await self._post(session, "introspect", "/v1/introspect", body)
        if answer.status == 200:
            if data["active"] and answer.sent > token.revoked_at:
                answer = replace(answer, wrong="revoked_active")
            elif not data["active"] and answer.done < token.revoke_sent:
                answer = replace(answer, wrong="live_inactive")
        self.on_answer(answer)

    async def _issue(self, session: aiohttp.ClientSession) -> None:
        user = f"load-{self._rng.randrange(self.mix.users)}"
        body = {"user_id": user, "app_id": self.mix.app_id}
        answer, data = await self._post(session, "issue", "/v1/tokens", body)
        if answer.status == 201:
            self.track(data["token"], data["id"])
        self.on_answer(answer)

    async def _revoke(self, session: aiohttp.ClientSession) -> None:
        live = self._live
        index = self._rng.randrange(len(live))
        live[index], live[-1] = live[-1], live[index]
        token = live.pop()
        token.revoke_sent = time.monotonic()
        answer, data = await self._post(session, "revoke", "/v1/revoke", {"token": token.value})
        if answer.status == 200:
            if data["revoked"] == [token.id]:
                token.revoked_at = answer.done
            else:  # a live token, so it must have been found: a wrong user tag, say
                answer = replace(answer, wrong="revoke_missed")
        self.on_answer(answer)
