"""Signed webhooks delivered from the events stream to real receivers on loopback, on a
standalone Redis and a Cluster: retries, a timeout, dead letters and their redelivery."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ADMIN_HEADERS, issue
from webhook_receivers import Receiver, write_webhooks

from service.api.metrics import METRICS
from service.api.responses import STORE
from service.app import create_app
from service.events import EventKind, RevocationEvent
from service.settings import Settings
from service.webhooks.dead_letters import DeadLetter, DeadLetters

Client = TestClient[Any, Any]
BACKENDS = pytest.mark.parametrize("backend", ["standalone", "cluster", "embedded"])
FAST = {"webhook_timeout": 0.3, "webhook_lease": 1.0, "webhook_backoff": 0.05}


async def _service(aiohttp_client: Any, settings: Settings, hooks: Path, **extra: Any) -> Client:
    settings = Settings(
        redis_url=settings.redis_url, clients_file=settings.clients_file,
        webhooks_file=str(hooks), **{**FAST, **extra},
    )  # fmt: skip
    client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    return client


async def _revoke(client: Client, user_id: str = "alice", app_id: str = "web") -> str:
    token = await issue(client, user_id, app_id)
    response = await client.delete(f"/v1/tokens/{token['id']}")
    assert response.status == 200
    return str(token["id"])


def _counter(client: Client, webhook: str, outcome: str) -> int:
    counts = client.app[METRICS].tally().counters["tokenstore_webhook_deliveries"]
    return int(counts.get((webhook, outcome), 0))


@BACKENDS
async def test_a_revocation_is_posted_signed_once(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        hooks = write_webhooks(tmp_path, {"id": "audit", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks)
        token_id = await _revoke(client)
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        got = receiver.received[0]
        assert got.body["type"] == "revocation.token"
        assert got.body["data"]["ids"] == [token_id]
        assert got.body["data"]["user_id"] == "alice"
        assert got.webhook_id.count("-") == 1  # the events stream's id
        await receiver.wait_for(lambda: _counter(client, "audit", "delivered") == 1)
        await asyncio.sleep(1.3)  # past a lease renewal or two: nothing more, it was acknowledged
        assert len(receiver.received) == 1


@BACKENDS
async def test_a_failing_receiver_gets_the_event_after_it_recovers_once(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    async with Receiver(lambda n: (0.0, 500 if n < 3 else 200)) as receiver:
        hooks = write_webhooks(tmp_path, {"id": "flaky", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks)
        first = await _revoke(client, "alice")
        second = await _revoke(client, "bob")
        await receiver.wait_for(lambda: len(receiver.delivered()) == 2)
        ids = [r.body["data"]["ids"][0] for r in receiver.delivered()]
        assert ids == [first, second]  # in stream order, each once
        assert [r.status for r in receiver.received[:3]] == [500, 500, 500]
        assert len({r.webhook_id for r in receiver.received[:4]}) == 1  # retries: same id
        assert _counter(client, "flaky", "retried") == 3


@BACKENDS
async def test_a_slow_receiver_times_out_and_the_event_is_retried(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    async with Receiver(lambda n: (1.0 if n == 0 else 0.0, 200)) as receiver:
        hooks = write_webhooks(tmp_path, {"id": "slow", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks)
        await _revoke(client)
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        assert receiver.received[0].webhook_id == receiver.delivered()[0].webhook_id
        assert _counter(client, "slow", "retried") >= 1


@BACKENDS
async def test_dead_letter_after_the_retry_window_then_redelivered(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    failing = True
    async with Receiver(lambda n: (0.0, 503 if failing else 200)) as receiver:
        hooks = write_webhooks(tmp_path, {"id": "down", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks, webhook_retry_for=1)
        token_id = await _revoke(client)
        await receiver.wait_for(lambda: _counter(client, "down", "dead_lettered") == 1)
        response = await client.get("/v1/webhooks/down/failures")
        assert response.status == 200
        [failure] = (await response.json())["failures"]
        assert failure["event"]["ids"] == [token_id]
        assert failure["last_error"] == "HTTP 503" and failure["attempts"] >= 2
        tries = len(receiver.received)
        await asyncio.sleep(0.5)
        assert len(receiver.received) == tries  # no more attempts once dead-lettered

        path = f"/v1/webhooks/down/failures/{failure['event_id']}/redeliver"
        response = await client.post(path)
        assert await response.json() == {"delivered": False, "error": "HTTP 503"}
        failing = False
        response = await client.post(path)
        assert await response.json() == {"delivered": True, "error": None}
        assert receiver.delivered()[-1].webhook_id == failure["event_id"]
        listed = await (await client.get("/v1/webhooks/down/failures")).json()
        assert listed == {"failures": [], "next_cursor": None}
        assert (await client.post(path)).status == 404


async def test_unknown_webhooks_and_malformed_ids(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    hooks = write_webhooks(tmp_path, {"id": "known", "url": "http://127.0.0.1:9/hook"})
    client = await _service(aiohttp_client, settings, hooks)
    cases = {
        "/v1/webhooks/other/failures": ("GET", 404, "webhook_not_found"),
        "/v1/webhooks/a%20b/failures": ("GET", 400, "invalid_webhook_id"),
        "/v1/webhooks/known/failures/1-0/redeliver": ("POST", 404, "failure_not_found"),
        "/v1/webhooks/known/failures/x/redeliver": ("POST", 400, "invalid_event_id"),
    }
    for path, (method, status, code) in cases.items():
        response = await client.request(method, path)
        assert (response.status, (await response.json())["error"]) == (status, code), path


@BACKENDS
async def test_fusionauth_format_and_the_webhook_s_events_and_apps(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        hook = {"id": "fa", "url": receiver.url, "format": "fusionauth", "events": ["user"],
                "apps": ["web"]}  # fmt: skip
        client = await _service(aiohttp_client, settings, write_webhooks(tmp_path, hook))
        await _revoke(client, "alice", "web")  # a token event: not wanted
        await issue(client, "alice", "other")
        await issue(client, "alice", "web")
        response = await client.delete("/v1/users/alice/tokens")  # one event per app
        assert response.status == 200
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        await receiver.wait_for(lambda: _counter(client, "fa", "delivered") == 1)
        await asyncio.sleep(0.3)
        [got] = receiver.received
        event = got.body["event"]
        assert event["type"] == "jwt.refresh-token.revoke"
        assert (event["applicationId"], event["userId"]) == ("web", "alice")
        assert event["applicationTimeToLiveInSeconds"] == {"web": settings.max_ttl}
        assert event["id"] == got.webhook_id and isinstance(event["createInstant"], int)


@BACKENDS
async def test_a_deleted_consumer_group_is_created_again(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    # A Redis restarted empty (or an operator's XGROUP DESTROY): delivery resumes.
    async with Receiver() as receiver:
        hooks = write_webhooks(tmp_path, {"id": "again", "url": receiver.url})
        client = await _service(aiohttp_client, settings, hooks)
        store = client.app[STORE]
        redis: Any = await store.client()
        await redis.xgroup_destroy(store.keys.events, "webhook:again")
        ops = await store.ops()
        async with asyncio.timeout(10):  # the worker's next read finds no group, and makes it
            while await ops.xinfo_group(store.keys.events, "webhook:again") is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await _revoke(client)
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1)


async def _failures(client: Client, query: str = "") -> Any:
    response = await client.get(f"/v1/webhooks/down/failures{query}")
    assert response.status == 200, await response.text()
    return await response.json()


@BACKENDS
async def test_dead_letters_are_paged_oldest_first(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    hooks = write_webhooks(tmp_path, {"id": "down", "url": "http://127.0.0.1:9/hook"})
    client = await _service(aiohttp_client, settings, hooks)
    store = client.app[STORE]
    dead = DeadLetters(store, 60_000)
    # Stream order; 12 ids per millisecond, so that "1000-10" must come after "1000-9".
    ids = [f"{1000 + n // 12}-{n % 12}" for n in range(250)]
    for event_id in random.Random(7).sample(ids, len(ids)):
        event = RevocationEvent(EventKind.TOKEN, "web", "alice", (f"t{event_id}",), at=1)
        await dead.add("down", DeadLetter(event_id, event, 3, "HTTP 503", 5))

    listed, sizes, cursor = [], [], None
    while True:
        page = await _failures(client, "" if cursor is None else f"?cursor={cursor}")
        sizes.append(len(page["failures"]))
        listed += [failure["event_id"] for failure in page["failures"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sizes == [100, 100, 50] and listed == ids
    assert page["failures"][-1]["event"]["ids"] == [f"t{ids[-1]}"]
    assert [len((await _failures(client, f"?limit={n}"))["failures"]) for n in (250, 1000)] == [
        250, 250
    ]  # fmt: skip
    assert (await _failures(client, "?limit=250"))["next_cursor"] is None
    assert (await _failures(client, "?limit=249"))["next_cursor"] == ids[248]
    page = await _failures(client, "?limit=3&cursor=1000-9")
    assert [f["event_id"] for f in page["failures"]] == ["1000-10", "1000-11", "1001-0"]
    assert page["next_cursor"] == "1001-0"
    assert await _failures(client, "?cursor=99999-0") == {"failures": [], "next_cursor": None}

    redis: Any = await store.client()
    letters_key, order_key = store.keys.webhook_failures("down")
    assert 0 < await redis.pttl(letters_key) <= 60_000
    assert 0 < await redis.pttl(order_key) <= 60_000
    await dead.drop("down", "1000-10")  # as a redelivery does: both keys in step
    assert (await redis.hlen(letters_key), await redis.zcard(order_key)) == (249, 249)
    page = await _failures(client, "?limit=2&cursor=1000-9")
    assert [f["event_id"] for f in page["failures"]] == ["1000-11", "1001-0"]


async def test_bad_paging_of_dead_letters(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    hooks = write_webhooks(tmp_path, {"id": "down", "url": "http://127.0.0.1:9/hook"})
    client = await _service(aiohttp_client, settings, hooks)
    cases = {
        "limit=0": "invalid_query", "limit=1001": "invalid_query", "limit=ten": "invalid_query",
        "cursor=abc": "invalid_cursor", "cursor=1-": "invalid_cursor",
    }  # fmt: skip
    for query, code in cases.items():
        response = await client.get(f"/v1/webhooks/down/failures?{query}")
        assert (response.status, (await response.json())["error"]) == (400, code), query
    assert await _failures(client, "?limit=&cursor=") == {"failures": [], "next_cursor": None}
