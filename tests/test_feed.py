"""The revocation feed (GET /v1/events): live events, replay, resync, filtering, heartbeats,
and streams ending with the app or with Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from helpers import ADMIN_HEADERS, Client, add_clients, bearer, client_entry, issue
from redis_servers import RedisServer

from service import sse
from service.api import feed as feed_api
from service.app import create_app
from service.event_log import StreamState
from service.feed import FeedEvent, events_lost_after
from service.redis_client import AnyRedis
from service.settings import Settings

WAIT = 5.0


class Events:
    """An open /v1/events response, read message by message with a deadline."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        assert response.status == 200, response.status
        assert response.headers["Content-Type"] == "text/event-stream"
        self.response = response
        self.raw_lines: list[bytes] = []
        self._messages = sse.parse(self._readline)

    async def _readline(self) -> bytes:
        line = await self.response.content.readline()
        self.raw_lines.append(line)
        return line

    async def next(self) -> sse.Message:
        async with asyncio.timeout(WAIT):
            return await anext(self._messages)

    async def until(self, event: str) -> list[sse.Message]:
        """Messages up to and including the first ``event``."""
        seen = [await self.next()]
        while seen[-1].event != event:
            seen.append(await self.next())
        return seen

    async def ended(self) -> bool:
        async with asyncio.timeout(WAIT):
            async for _ in self._messages:
                pass
        return True


async def open_events(client: Client, **headers: str) -> Events:
    return Events(await client.get("/v1/events", headers=headers))


async def stream_ids(redis: AnyRedis) -> list[str]:
    return [i.decode() for i, _ in await cast(Any, redis).xrange("ts:events")]


async def test_revocations_arrive_live_with_ids_kinds_and_json(
    client: Client, redis: AnyRedis
) -> None:
    events = await open_events(client)
    ready = await events.next()
    assert (ready.event, ready.data) == ("ready", '{"heartbeat":15.0}')
    a = await issue(client, "alice", "web")
    b = await issue(client, "alice", "mobile")
    await client.delete(f"/v1/tokens/{a['id']}")
    await client.delete("/v1/users/alice/tokens?app_id=mobile")
    await client.delete("/v1/apps/web/tokens")
    got = [await events.next() for _ in range(3)]
    assert [m.id for m in got] == await stream_ids(redis)
    assert [m.event for m in got] == ["token", "user", "app"]
    bodies = [json.loads(m.data or "") for m in got]
    token_event = {"kind": "token", "app_id": "web", "user_id": "alice", "ids": [a["id"]]}
    assert bodies[0] == {**token_event, "at": bodies[0]["at"]}
    assert bodies[1]["ids"] == [b["id"]]
    assert (bodies[1]["user_id"], bodies[1]["scope"]) == ("alice", "user_app")
    assert bodies[2]["app_id"] == "web"
    assert isinstance(bodies[2]["revoked_before"], int)
    assert all("actor" not in body for body in bodies)


async def test_last_event_id_replays_every_event_since(client: Client, redis: AnyRedis) -> None:
    tokens = [await issue(client, "alice", "web") for _ in range(4)]
    for token in tokens[:3]:
        await client.delete(f"/v1/tokens/{token['id']}")
    first, second, third = await stream_ids(redis)
    streams = [
        await open_events(client, **{"Last-Event-ID": first}),
        Events(await client.get(f"/v1/events?last_event_id={first}")),
    ]
    for events in streams:
        replayed = await events.until("ready")
        assert [(m.event, m.id) for m in replayed] == [
            ("token", second), ("token", third), ("ready", third)
        ]  # fmt: skip
    await client.delete(f"/v1/tokens/{tokens[3]['id']}")
    for events in streams:
        live = await events.next()
        assert json.loads(live.data or "")["ids"] == [tokens[3]["id"]]
    caught_up = await open_events(client, **{"Last-Event-ID": (await stream_ids(redis))[-1]})
    assert [m.event for m in await caught_up.until("ready")] == ["ready"]


async def test_lost_events_make_the_client_reset(client: Client, redis: AnyRedis) -> None:
    for _ in range(3):
        await client.delete(f"/v1/tokens/{(await issue(client))['id']}")
    first, _, third = await stream_ids(redis)
    await cast(Any, redis).xtrim("ts:events", minid=third, approximate=False)
    for stale in [first, "99999999999999-0"]:  # trimmed away; never issued by this stream
        events = await open_events(client, **{"Last-Event-ID": stale})
        reset, ready = await events.next(), await events.next()
        assert (reset.event, ready.event, ready.id) == ("reset", "ready", third)
    kept = await open_events(client, **{"Last-Event-ID": third})
    assert (await kept.next()).event == "ready"
    bad = await client.get("/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status == 400
    # Both given: the header's id is used, and neither may be malformed (as documented).
    both = await client.get("/v1/events?last_event_id=yesterday", headers={"Last-Event-ID": third})
    assert both.status == 400


def test_events_lost_after() -> None:
    def state(last: str, first: str, length: int, added: int) -> StreamState:
        return StreamState(last, first, length, added)

    assert not events_lost_after(None, "0-0")  # no stream, nothing seen: nothing lost
    assert events_lost_after(None, "5-0")  # the stream was deleted
    untrimmed = state("9-0", "1-0", 5, 5)
    assert not events_lost_after(untrimmed, "0-0")
    assert events_lost_after(untrimmed, "10-0")
    trimmed = state("9-0", "4-0", 3, 5)
    assert events_lost_after(trimmed, "3-0")
    assert not events_lost_after(trimmed, "4-0")
    emptied = state("9-0", "0-0", 0, 5)
    assert events_lost_after(emptied, "8-5")
    assert not events_lost_after(emptied, "9-0")


WEB_GATEWAY = "tkc_gateway-of-the-web-app-only"


@pytest.fixture
def web_gateway(clients_file: Path) -> str:
    """A gateway client scoped to app "web" (added to the clients file); its secret."""
    add_clients(clients_file, client_entry("web-gateway", WEB_GATEWAY, ["introspect"], ["web"]))
    return WEB_GATEWAY


async def test_filtered_feed_heartbeats_and_moves_the_id_past_hidden_events(
    aiohttp_client: Any, settings: Settings, web_gateway: str
) -> None:
    """A client scoped to app "web" sees only web's events: the feed is filtered by scope."""
    app = create_app(dataclasses.replace(settings, feed_heartbeat=0.1))
    client = await aiohttp_client(app, headers=ADMIN_HEADERS)
    events = await open_events(client, **bearer(web_gateway))
    assert (await events.next()).event == "ready"
    hidden = await issue(client, "alice", "mobile")
    shown = await issue(client, "alice", "web")
    await client.delete(f"/v1/tokens/{hidden['id']}")
    await client.delete(f"/v1/tokens/{shown['id']}")
    await client.delete(f"/v1/tokens/{(await issue(client, 'bob', 'mobile'))['id']}")
    message = await events.next()
    assert json.loads(message.data or "")["ids"] == [shown["id"]]
    position = await events.next()  # the next heartbeat moves Last-Event-ID past bob's
    assert (position.event, position.data) == (None, None)
    assert position.id is not None and position.id > (message.id or "")
    await asyncio.sleep(0.25)
    await client.delete(f"/v1/tokens/{(await issue(client, 'carol', 'web'))['id']}")
    assert (await events.next()).event == "token"
    assert b": heartbeat\n" in events.raw_lines


def test_events_naming_many_tokens_are_split_and_only_the_last_part_has_the_id() -> None:
    ids = [f"{n:032d}" for n in range(1200)]
    event = FeedEvent.from_entry(("7-1", {"kind": "user", "app_id": "a", "ids": ",".join(ids)}))
    lines = iter(event.wire.splitlines(keepends=True))

    async def readline() -> bytes:
        return next(lines, b"")

    async def messages() -> list[sse.Message]:
        return [m async for m in sse.parse(readline)]

    parts = asyncio.run(messages())
    assert [m.id for m in parts] == [None, None, "7-1"]
    assert max(len(m.data or "") for m in parts) < 20_000
    assert [i for m in parts for i in json.loads(m.data or "")["ids"]] == ids


@pytest.fixture
async def served(redis_server: RedisServer, clients_file: Path) -> AsyncIterator[TestServer]:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, clients_file=str(clients_file))
    server = TestServer(create_app(settings))
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_many_subscribers_share_one_reader_and_shutdown_ends_them(
    served: TestServer,
) -> None:
    async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
        streams = [Events(await session.get(served.make_url("/v1/events"))) for _ in range(5)]
        for events in streams:
            assert (await events.next()).event == "ready"
        feed = served.app[feed_api.FEED]
        assert feed.listeners == 5
        revoked = await session.post(
            served.make_url("/v1/tokens"), json={"user_id": "u", "app_id": "a"}
        )
        await session.delete(served.make_url(f"/v1/tokens/{(await revoked.json())['id']}"))
        for events in streams:
            assert (await events.next()).event == "token"
        started = time.monotonic()
        await served.close()
        assert time.monotonic() - started < 3
        for events in streams:
            assert await events.ended()


async def test_redis_loss_ends_streams_and_refuses_new_ones(clients_file: Path) -> None:
    server = RedisServer()
    server.start()
    try:
        settings = Settings(redis_url=server.url, redis_timeout=0.3, clients_file=str(clients_file))
        app = create_app(settings)
        async with TestServer(app) as served, aiohttp.ClientSession() as session:
            events = Events(await session.get(served.make_url("/v1/events"), headers=ADMIN_HEADERS))
            assert (await events.next()).event == "ready"
            token = await session.post(
                served.make_url("/v1/tokens"),
                json={"user_id": "u", "app_id": "a"},
                headers=ADMIN_HEADERS,
            )
            token_value = (await token.json())["token"]
            server.stop()
            assert await events.ended()
            # Authenticated (client credentials need no Redis), then refused: Redis is gone.
            refused = await session.get(served.make_url("/v1/events"), headers=ADMIN_HEADERS)
            assert refused.status == 503
            authz = await session.get(
                served.make_url("/v1/authz"), headers={"Authorization": f"Bearer {token_value}"}
            )
            assert authz.status == 503  # fail closed, never 200
            assert authz.headers["Cache-Control"] == "no-store"
            assert authz.headers["Retry-After"] == "1"
    finally:
        server.stop()
