"""Webhooks with several real service processes (replicas) on one Redis, standalone and
Cluster: one delivers at a time (the lease), so every user's events reach the receiver in the
order they were revoked; and when that one is killed (SIGKILL) mid-delivery another takes over
within about the lease's TTL, sends the interrupted event again first, and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import ADMIN_HEADERS
from redis_servers import RedisCluster, RedisServer
from service_process import ServiceProcess
from webhook_receivers import Receiver, wait_until, write_webhooks

LEASE_S = 2.0
SETTINGS = {
    "TOKENSTORE_WEBHOOK_TIMEOUT": "60",  # the slow receiver below never times out: it is killed
    "TOKENSTORE_WEBHOOK_LEASE": str(LEASE_S),
    "TOKENSTORE_WEBHOOK_BACKOFF": "0.05",
}
USERS = [f"user{n}" for n in range(4)]
BACKENDS = pytest.mark.parametrize("backend", ["standalone", "cluster"])
_HELD = re.compile(r'^tokenstore_webhook_lease_held\{webhook="audit"\} 1\.0$', re.MULTILINE)


def _env(request: pytest.FixtureRequest, backend: str, hooks: Path) -> dict[str, Any]:
    redis: RedisServer | RedisCluster = request.getfixturevalue(
        "redis_server" if backend == "standalone" else "redis_cluster"
    )
    redis.flush()
    return {"TOKENSTORE_REDIS_URL": redis.url, "TOKENSTORE_WEBHOOKS_FILE": str(hooks), **SETTINGS}


@contextlib.contextmanager
def _replicas(tmp_path: Path, env: dict[str, Any], count: int) -> Iterator[list[ServiceProcess]]:
    with contextlib.ExitStack() as stack:
        processes = []
        for n in range(count):
            (tmp_path / f"replica{n}").mkdir()
            processes.append(stack.enter_context(ServiceProcess(tmp_path / f"replica{n}", env)))
        yield processes


async def _holds_lease(process: ServiceProcess) -> bool:
    async with aiohttp.ClientSession() as session, session.get(process.metrics_url) as response:
        return bool(_HELD.search(await response.text()))


async def _holders(processes: list[ServiceProcess]) -> list[ServiceProcess]:
    held = await asyncio.gather(*(_holds_lease(p) for p in processes))
    return [p for p, holds in zip(processes, held, strict=True) if holds]


async def _revoke_in_turn(urls: list[str], rounds: int) -> dict[str, list[str]]:
    """Each user's tokens issued and revoked one after another, the users at once, through the
    replicas in turn: token ids by user, in the order they were revoked."""
    revoked: dict[str, list[str]] = {user: [] for user in USERS}

    async def one_user(session: aiohttp.ClientSession, index: int, user: str) -> None:
        for n in range(rounds):
            url = urls[(index + n) % len(urls)]
            issue = {"user_id": user, "app_id": "web"}
            async with session.post(f"{url}/v1/tokens", json=issue) as response:
                assert response.status == 201
                token_id = (await response.json())["id"]
            async with session.delete(f"{url}/v1/tokens/{token_id}") as response:
                assert response.status == 200
            revoked[user].append(token_id)

    async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
        await asyncio.gather(*(one_user(session, i, user) for i, user in enumerate(USERS)))
    return revoked


def _first_deliveries(receiver: Receiver) -> dict[str, list[str]]:
    """Token ids by user, in the order the receiver first saw each message (webhook-id)."""
    seen: set[str] = set()
    firsts: dict[str, list[str]] = {user: [] for user in USERS}
    for got in receiver.received:
        if got.webhook_id not in seen:
            seen.add(got.webhook_id)
            firsts[got.body["data"]["user_id"]].append(got.body["data"]["ids"][0])
    return firsts


def _delivered_ids(receiver: Receiver) -> list[str]:
    return [got.webhook_id for got in receiver.delivered()]


def _stream_position(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


@BACKENDS
async def test_replicas_deliver_each_user_s_events_in_order(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Slow answers now and then, and one failure: with each replica delivering its own
    # events at once, a user's later event would overtake an earlier one.
    def behaviour(n: int) -> tuple[float, int]:
        return (0.05 if n % 3 == 0 else 0.0), (500 if n == 5 else 200)

    async with Receiver(behaviour) as receiver:
        env = _env(request, backend, write_webhooks(tmp_path, {"id": "audit", "url": receiver.url}))
        with _replicas(tmp_path, env, 3) as replicas:
            await asyncio.gather(*(replica.wait_ready() for replica in replicas))
            revoked = await _revoke_in_turn([replica.url for replica in replicas], rounds=5)
            total = sum(len(ids) for ids in revoked.values())
            await wait_until(lambda: len(receiver.delivered()) == total, within=30)
            assert len(await _holders(replicas)) == 1
        assert _first_deliveries(receiver) == revoked  # each user's in order; none lost
        # One deliverer: the whole stream's order, each event answered 2xx once.
        firsts = list(dict.fromkeys(got.webhook_id for got in receiver.received))
        assert firsts == sorted(firsts, key=_stream_position)
        assert sorted(_delivered_ids(receiver)) == sorted(set(_delivered_ids(receiver)))


@BACKENDS
async def test_a_killed_holder_s_event_is_delivered_first_by_another_replica(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # The third request is never answered: its sender is killed while it waits.
    async with Receiver(lambda n: (60.0 if n == 2 else 0.0, 200)) as receiver:
        env = _env(request, backend, write_webhooks(tmp_path, {"id": "audit", "url": receiver.url}))
        with _replicas(tmp_path, env, 3) as replicas:
            await asyncio.gather(*(replica.wait_ready() for replica in replicas))
            async with asyncio.timeout(10):
                while not (holders := await _holders(replicas)):  # noqa: ASYNC110 (a scrape)
                    await asyncio.sleep(0.05)
            [holder] = holders
            others = [replica for replica in replicas if replica is not holder]
            before = await _revoke_in_turn([replica.url for replica in replicas], rounds=2)
            await receiver.wait_for(lambda: len(receiver.received) == 3)
            interrupted = receiver.received[2].webhook_id
            holder.kill_group()  # mid-delivery: its POST was received, not answered
            killed_at = time.monotonic()
            await holder.wait_exit(10)
            after = await _revoke_in_turn([other.url for other in others], rounds=2)
            await wait_until(lambda: len(receiver.received) >= 4, within=LEASE_S + 8)
            takeover_s = receiver.received[3].at - killed_at
            total = 2 * 2 * len(USERS)
            await wait_until(lambda: len(receiver.delivered()) == total, within=30)
            await asyncio.sleep(LEASE_S)  # a lease renewal or more: no other duplicate comes
            assert len(await _holders(others)) == 1
        # Taken over within the lease's TTL (and a standby's try, a quarter of it) plus slack.
        assert takeover_s < LEASE_S * 1.25 + 2.0, takeover_s
        assert receiver.received[3].webhook_id == interrupted  # sent again, before any other
        revoked = {user: before[user] + after[user] for user in USERS}
        assert _first_deliveries(receiver) == revoked  # each user's in order; none lost
        ids = [got.webhook_id for got in receiver.received]
        assert [i for i in set(ids) if ids.count(i) > 1] == [interrupted]  # twice, no more
        assert ids.count(interrupted) == 2
        assert len(_delivered_ids(receiver)) == len(set(_delivered_ids(receiver))) == total
