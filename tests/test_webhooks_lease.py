"""A webhook's delivery lease in the app: a process that loses it stops delivering at once
(fencing) and, taking it again, delivers the event it left pending before any later one; a
process that stops gives it up, so that another takes over without waiting for its TTL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ADMIN_HEADERS, issue
from webhook_receivers import Receiver, wait_until, write_webhooks

from service.api.metrics import METRICS
from service.api.responses import STORE
from service.app import create_app
from service.clock import now_ms
from service.events import EventKind, RevocationEvent
from service.settings import Settings

Client = TestClient[Any, Any]
BACKENDS = pytest.mark.parametrize("backend", ["standalone", "cluster", "embedded"])
SHARED_REDIS = pytest.mark.parametrize("backend", ["standalone", "cluster"])
FAST: dict[str, Any] = {"webhook_timeout": 0.3, "webhook_backoff": 0.05}


async def _service(aiohttp_client: Any, settings: Settings, hooks: Path, lease_s: float) -> Client:
    settings = Settings(
        redis_url=settings.redis_url, clients_file=settings.clients_file,
        webhooks_file=str(hooks), webhook_lease=lease_s, **FAST,
    )  # fmt: skip
    client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    return client


async def _revoke(client: Client, user_id: str) -> str:
    token = await issue(client, user_id, "web")
    response = await client.delete(f"/v1/tokens/{token['id']}")
    assert response.status == 200
    return str(token["id"])


def _holds(client: Client, webhook: str) -> bool:
    gauges = client.app[METRICS].tally().highest.get("tokenstore_webhook_lease_held", {})
    return bool(gauges.get((webhook,)) == 1.0)


def _delivered(client: Client) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = (
        client.app[METRICS].tally().counters.get("tokenstore_webhook_deliveries", {})
    )
    return counts


async def _redis(client: Client) -> Any:
    return await client.app[STORE].client()


@BACKENDS
async def test_a_lost_lease_stops_delivery_and_the_next_term_starts_with_the_pending_event(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    failing = True
    async with Receiver(lambda n: (0.0, 500 if failing else 200)) as receiver:
        hooks = write_webhooks(tmp_path, {"id": "fenced", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks, lease_s=1.0)
        lease_key = client.app[STORE].keys.webhook_lease("fenced")
        await wait_until(lambda: _holds(client, "fenced"))
        redis = await _redis(client)
        token = await redis.get(lease_key)
        assert len(token) == 32 and 0 < await redis.pttl(lease_key) <= 1000

        first = await _revoke(client, "alice")
        await receiver.wait_for(lambda: len(receiver.received) >= 2)  # being retried
        await redis.set(lease_key, "another process")  # as if Redis lost it, and one took it
        await wait_until(lambda: not _holds(client, "fenced"), within=3)
        await asyncio.sleep(0.1)  # an attempt already sent arrives
        attempts = len(receiver.received)
        second = await _revoke(client, "bob")
        await asyncio.sleep(1.0)
        assert len(receiver.received) == attempts  # nothing sent without the lease

        failing = False
        await redis.delete(lease_key)
        await receiver.wait_for(lambda: len(receiver.delivered()) == 2)
        assert [r.body["data"]["ids"][0] for r in receiver.delivered()] == [first, second]
        assert len({r.webhook_id for r in receiver.received[: attempts + 1]}) == 1
        assert await redis.get(lease_key) == token  # the same process, a new term


@SHARED_REDIS
async def test_a_stopping_process_gives_the_lease_to_another_at_once(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    lease_s = 8.0  # far longer than a handover: the lease is released, not left to expire
    async with Receiver() as receiver:
        hooks = write_webhooks(tmp_path, {"id": "handover", "url": receiver.url})
        first = await _service(aiohttp_client, settings, hooks, lease_s)
        await wait_until(lambda: _holds(first, "handover"))
        second = await _service(aiohttp_client, settings, hooks, lease_s)
        await _revoke(second, "alice")
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        await wait_until(lambda: _delivered(first) == {("handover", "delivered"): 1})
        assert _holds(first, "handover") and not _holds(second, "handover")
        assert _delivered(second) == {}

        stopped_at = time.monotonic()
        await first.close()
        await wait_until(lambda: _holds(second, "handover"), within=lease_s)
        assert time.monotonic() - stopped_at < lease_s / 2
        await _revoke(second, "bob")
        await receiver.wait_for(lambda: len(receiver.delivered()) == 2)
        assert len(receiver.received) == 2
        redis = await _redis(second)
        consumers = await redis.xinfo_consumers(second.app[STORE].keys.events, "webhook:handover")
        assert len(consumers) == 1  # the first process's consumer went with the lease


@pytest.mark.parametrize("backend", ["standalone"])  # a MULTI on the stream alone
async def test_an_event_a_past_holder_read_late_is_still_delivered(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    # A past holder's blocking read, answered by Redis after this process's takeover pass
    # (the worker bounds its reads by its lease so that this should not happen; this is the
    # safety net): the entry is pending to another consumer, and the holder goes over it.
    async with Receiver() as receiver:
        hooks = write_webhooks(tmp_path, {"id": "late", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks, lease_s=1.0)
        await wait_until(lambda: _holds(client, "late"))
        store = client.app[STORE]
        redis = await _redis(client)
        event = RevocationEvent(EventKind.TOKEN, "web", "alice", ("t1",), at=now_ms())
        async with redis.pipeline(transaction=True) as pipe:  # before the holder's read
            pipe.xadd(store.keys.events, event.stream_fields())
            pipe.xreadgroup("webhook:late", "past holder", {store.keys.events: ">"}, count=1)
            added, read = await pipe.execute()
        assert read[0][1][0][0] == added
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1, within=5)
        assert receiver.delivered()[0].webhook_id == added.decode()
        assert receiver.delivered()[0].body["data"]["ids"] == ["t1"]
