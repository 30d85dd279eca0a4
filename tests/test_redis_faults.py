"""Redis faults under load, on real processes: Redis killed (SIGKILL) and restarted on its port,
and Redis frozen (SIGSTOP) then thawed, while a `tokenstore serve` process takes a few hundred
requests a second (issue #10).

Whatever happens, every answer is a 200/201 or a 503 with Retry-After (never a 500, never a
hung request), no token revoked before a request was sent is ever answered active (tokens
revoked before the load and during it, through the fault), live tokens stay active once Redis is
back, and the first 200 comes within a loose bound of Redis being back. Redis fsyncs every
write here, so that what it keeps over a restart is not in question (durability is another
test's business).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import ADMIN_HEADERS
from mixed_load import Answer, MixedLoad
from redis_faults import FaultyRedis
from service_process import ServiceProcess

pytestmark = pytest.mark.slow

REDIS_TIMEOUT = 1.0  # TOKENSTORE_REDIS_TIMEOUT (default 2): the bounds below scale with it
RATE = 200  # requests started per second, whatever the answers
WARM_UP = 1.5
KILLED = 3.0  # seconds between the SIGKILL and the new redis-server
FROZEN = 8.0  # seconds between SIGSTOP and SIGCONT
AFTER = 3.0
# Loose: a shared 2-core machine may be late by seconds, never early.
RECOVERY_BOUND = 5.0  # Redis back (answering PING) -> a 200 answered
# A free pooled connection, then the command itself; plus a loaded machine's lag.
ANSWER_BOUND = 2 * REDIS_TIMEOUT + 4.0
EXPECTED = {"introspect": {200, 503}, "issue": {201, 503}, "revoke": {200, 503}}


@pytest.fixture
def redis() -> Iterator[FaultyRedis]:
    with FaultyRedis() as server:
        yield server


@pytest.fixture
def service(redis: FaultyRedis, tmp_path: Path) -> Iterator[ServiceProcess]:
    settings = {"TOKENSTORE_REDIS_URL": redis.url, "TOKENSTORE_REDIS_TIMEOUT": str(REDIS_TIMEOUT)}
    with ServiceProcess(tmp_path, settings) as process:
        yield process


async def _prepared_load(service: ServiceProcess, answers: list[Answer]) -> MixedLoad:
    """Load over 150 live tokens and 90 revoked before it starts (by id, by value, a user's
    and a whole app's)."""
    await service.wait_ready()
    load = MixedLoad(service.url, ADMIN_HEADERS, answers.append, rate=RATE)
    async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with session.request(method, service.url + path, json=body) as response:
                assert response.status in {200, 201}, await response.text()
                return await response.json()

        async def issue(user: str, app: str) -> Any:
            return await call("POST", "/v1/tokens", {"user_id": user, "app_id": app})

        live = [await issue(f"user-{n % 30}", "web") for n in range(180)]
        gone_app = [await issue(f"user-{n % 30}", "gone") for n in range(30)]
        gone_user = [await issue("leaver", "web") for _ in range(30)]
        await call("DELETE", "/v1/apps/gone/tokens")
        await call("DELETE", "/v1/users/leaver/tokens")
        for token in live[:15]:
            await call("POST", "/v1/revoke", {"token": token["token"]})
        for token in live[15:30]:
            await call("DELETE", f"/v1/tokens/{token['id']}")
    for n, token in enumerate(live):
        load.track(token["token"], token["id"], revoked=n < 30)
    for token in gone_app + gone_user:
        load.track(token["token"], token["id"], revoked=True)
    return load


async def _under_load(load: MixedLoad, fault: Any) -> tuple[float, float, float]:
    """Runs ``fault()`` between a warm-up and a quiet spell of load; it returns when Redis
    stopped answering, when it began to come back, and when it was back."""
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    try:
        await asyncio.sleep(WARM_UP)
        times: tuple[float, float, float] = await fault()
        await asyncio.sleep(AFTER)
    finally:
        stop.set()
        await running
    return times


def _assert_fail_closed(answers: list[Answer], service: ServiceProcess) -> None:
    failed = [a for a in answers if a.error or a.status not in EXPECTED[a.kind]]
    assert failed == [], failed[:5]
    assert [a for a in answers if a.status == 503 and a.retry_after != "1"] == []
    assert [a for a in answers if a.wrong] == []
    slow = [a for a in answers if a.seconds > ANSWER_BOUND]
    assert slow == [], slow[:5]
    errors = [line for line in service.lines() if line["level"] in {"ERROR", "CRITICAL"}]
    assert errors == [], errors[:3]


def _assert_recovered(answers: list[Answer], back: float) -> None:
    first_200 = min(a.done for a in answers if a.status in {200, 201} and a.done > back)
    assert first_200 - back < RECOVERY_BOUND
    late = [a for a in answers if a.sent > first_200 + 1.0]
    assert late and all(a.status in {200, 201} for a in late), late[:5]


async def test_redis_killed_and_restarted_under_load(
    redis: FaultyRedis, service: ServiceProcess
) -> None:
    answers: list[Answer] = []
    load = await _prepared_load(service, answers)

    async def kill_and_restart() -> tuple[float, float, float]:
        await asyncio.to_thread(redis.kill)
        killed = time.monotonic()
        await asyncio.sleep(KILLED)
        restarting = time.monotonic()
        await asyncio.to_thread(redis.restart)
        return killed, restarting, time.monotonic()

    killed, restarting, back = await _under_load(load, kill_and_restart)

    _assert_fail_closed(answers, service)
    # Sent and answered while no Redis was running: nothing but 503s.
    outage = [a for a in answers if killed < a.sent and a.done < restarting]
    assert outage and all(a.status == 503 for a in outage)
    _assert_recovered(answers, back)
    assert len({a.kind for a in answers if a.status in {200, 201}}) == 3  # all three were served


async def test_redis_frozen_then_thawed_under_load(
    redis: FaultyRedis, service: ServiceProcess
) -> None:
    answers: list[Answer] = []
    load = await _prepared_load(service, answers)

    async def freeze_and_thaw() -> tuple[float, float, float]:
        redis.pause()
        frozen = time.monotonic()
        await asyncio.sleep(FROZEN)
        thawing = time.monotonic()
        redis.resume()
        return frozen, thawing, time.monotonic()

    frozen, thawing, thawed = await _under_load(load, freeze_and_thaw)

    _assert_fail_closed(answers, service)
    # Nothing hangs: every answer came within ANSWER_BOUND (above), so a request sent early
    # enough in the freeze was answered before the thaw: a 503.
    during = [a for a in answers if frozen < a.sent < thawing - ANSWER_BOUND]
    assert during and all(a.status == 503 and a.done < thawing for a in during)
    _assert_recovered(answers, thawed)
