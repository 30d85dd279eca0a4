"""GatewayClient against the real service (standalone Redis): caching by the hints, dropping
answers on revocation events, reconnecting with Last-Event-ID, the middleware."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from helpers import ADMIN_HEADERS, add_clients, basic, bearer, client_entry
from redis_servers import RedisServer, free_port

from service.app import create_app
from service.client import IDENTITY, GatewayClient, GatewayError, max_age
from service.gateway_cache import AnswerCache, Invalidation
from service.identity import Identity
from service.settings import Settings

Requests = list[tuple[str, str | None, str | None]]  # (path, Last-Event-ID, Authorization)
GATEWAY_ID, GATEWAY_SECRET = "gateway", "tkc_test-gateway-secret-0123456789"
# What a gateway follows the feed with: its own API client, `introspect` on every app.
FEED_CREDENTIALS = bearer(GATEWAY_SECRET)["Authorization"]


class Service:
    """The service on a fixed port (so it can be restarted), recording the requests it gets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.requests: Requests = []
        self.server: TestServer | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = create_app(self.settings)

        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            headers = request.headers
            self.requests.append(
                (request.path, headers.get("Last-Event-ID"), headers.get("Authorization"))
            )
            return await handler(request)

        app.middlewares.append(record)
        self.server = TestServer(app, port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """An admin call (issue, revoke), as the admin client of the clients file."""
        async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
            response = await session.request(method, self.url + path, **kwargs)
            assert response.status < 300, await response.text()
            return await response.json()

    async def issue(self, user_id: str = "alice", app_id: str = "web", **extra: Any) -> Any:
        return await self.call("POST", "/v1/tokens", json={"user_id": user_id, "app_id": app_id,
                                                           **extra})  # fmt: skip


@pytest.fixture
def clients_file(clients_file: Path) -> Path:
    """The admin client (for the test's own calls) and the gateway's."""
    return add_clients(
        clients_file, client_entry(GATEWAY_ID, GATEWAY_SECRET, ["introspect"], ["*"])
    )


@pytest.fixture
async def service(redis_server: RedisServer, clients_file: Path) -> AsyncIterator[Service]:
    redis_server.flush()
    settings = Settings(
        redis_url=redis_server.url,
        clients_file=str(clients_file),
        cache_max_age=60,
        feed_heartbeat=1,
    )
    running = Service(settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def eventually(condition: Callable[[], bool]) -> float:
    """Seconds until ``condition()`` holds; fails after 5 s."""
    started = time.monotonic()
    for _ in range(5000):
        if condition():
            return time.monotonic() - started
        await asyncio.sleep(0.001)
    raise AssertionError("still not true after 5 s")


async def connected(client: GatewayClient, connections: int = 1) -> None:
    await eventually(lambda: client.feed_connections >= connections and client.feed_connected)


async def dropped(client: GatewayClient, token: str) -> float:
    """Seconds until the client's cache no longer holds a positive answer for ``token``."""
    return await eventually(lambda: client.cached(token) is None)


async def first_event(client: GatewayClient) -> str:
    await eventually(lambda: client.last_event_id not in {None, "0-0"})
    assert client.last_event_id is not None
    return client.last_event_id


async def test_answers_are_cached_as_the_hints_say(service: Service) -> None:
    body = await service.issue(scopes=["read"])
    async with GatewayClient(service.url, follow_feed=False) as client:
        identity = await client.check(body["token"])
        assert identity == Identity(body["id"], "alice", "web", ("read",), body["expires_at"])
        assert await client.check(body["token"]) == identity
        assert await client.check("not-a-token") is None
        assert await client.check("not-a-token") is None
        assert service.count("/v1/authz") == 2  # one each; the repeats came from the cache
        await asyncio.sleep(1.05)  # the negative hint is 1 s
        assert await client.check("not-a-token") is None
        assert service.count("/v1/authz") == 3
        await asyncio.gather(*(client.check(f"other-{n % 3}") for n in range(30)))
        assert service.count("/v1/authz") == 6  # concurrent checks of a token share a request


@pytest.mark.parametrize("revocation", ["token", "user", "user_app", "app"])
async def test_revocation_events_drop_cached_answers(service: Service, revocation: str) -> None:
    alice = await service.issue("alice", "web")
    other_app = await service.issue("alice", "mobile")
    bob = await service.issue("bob", "web")
    async with GatewayClient(service.url, authorization=FEED_CREDENTIALS) as client:
        await connected(client)
        for body in (alice, other_app, bob):
            assert await client.check(body["token"]) is not None
        path = {
            "token": f"/v1/tokens/{alice['id']}",
            "user": "/v1/users/alice/tokens",
            "user_app": "/v1/users/alice/tokens?app_id=web",
            "app": "/v1/apps/web/tokens",
        }[revocation]
        await service.call("DELETE", path)
        assert await dropped(client, alice["token"]) < 1.0
        assert await client.check(alice["token"]) is None
        kept = {"token": [other_app, bob], "user": [bob], "user_app": [other_app, bob],
                "app": [other_app]}[revocation]  # fmt: skip
        assert [client.cached(b["token"]) is not None for b in kept] == [True] * len(kept)


async def test_lost_feed_clears_the_cache_and_replays_from_last_event_id(service: Service) -> None:
    first = await service.issue()
    credentials = basic(GATEWAY_ID, GATEWAY_SECRET)["Authorization"]
    async with GatewayClient(service.url, authorization=credentials, backoff=(1.0, 1.0)) as client:
        await connected(client)
        await service.call("DELETE", f"/v1/tokens/{(await service.issue())['id']}")
        seen = await first_event(client)
        assert await client.check(first["token"]) is not None
        await service.stop()  # the service restarts: the stream ends
        assert await dropped(client, first["token"]) < 1.0  # fail safe: nothing cached now
        await service.start()
        # While the client waits to reconnect, a token is cached and then revoked.
        assert await client.check(first["token"]) is not None
        await service.call("DELETE", f"/v1/tokens/{first['id']}")
        assert not client.feed_connected
        await connected(client, 2)
        assert await dropped(client, first["token"]) < 1.0  # the replay carried the revocation
        assert ("/v1/events", seen, credentials) in service.requests


async def test_reset_clears_answers_cached_while_disconnected(
    service: Service, redis_server: RedisServer
) -> None:
    async with GatewayClient(
        service.url, authorization=FEED_CREDENTIALS, backoff=(1.0, 1.0)
    ) as client:
        await connected(client)
        await service.call("DELETE", f"/v1/tokens/{(await service.issue())['id']}")
        await first_event(client)
        await service.stop()
        redis_server.flush()  # Redis lost everything, events included
        await service.start()
        body = await service.issue()
        assert await client.check(body["token"]) is not None
        await connected(client, 2)
        assert client.cached(body["token"]) is None  # dropped by `event: reset`


async def test_middleware_protects_a_gateway(service: Service, aiohttp_client: Any) -> None:
    reader = await service.issue(scopes=["read"])
    other = await service.issue(scopes=["write"])

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=request[IDENTITY].user_id)

    async with GatewayClient(service.url, follow_feed=False) as gateway:
        app = web.Application(middlewares=[gateway.middleware(scopes={"read"}, app="web")])
        app.router.add_get("/", hello)
        client = await aiohttp_client(app)

        async def status(token: str | None) -> tuple[int, str | None]:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            response = await client.get("/", headers=headers)
            return response.status, response.headers.get("WWW-Authenticate")

        assert await status(reader["token"]) == (200, None)
        assert (
            await (
                await client.get("/", headers={"Authorization": f"Bearer {reader['token']}"})
            ).text()
            == "alice"
        )
        assert await status(None) == (401, "Bearer")
        assert await status("forged") == (401, 'Bearer error="invalid_token"')
        assert await status(other["token"]) == (
            403, 'Bearer error="insufficient_scope", scope="read"'
        )  # fmt: skip
        await service.stop()
        assert await status(reader["token"]) == (200, None)  # cached for its max-age
        assert await status("never-seen") == (503, None)  # fail closed
        with pytest.raises(GatewayError):
            await gateway.check("never-seen")


def identity(token_id: str, user_id: str = "alice", app_id: str = "web") -> Identity:
    return Identity(token_id, user_id, app_id, (), 0)


def test_an_answer_racing_its_revocation_is_not_cached() -> None:
    cache = AnswerCache()
    mark = cache.mark()
    cache.invalidate(Invalidation("user", app_id="web", ids=frozenset({"t1"}), user_id="alice"))
    assert not cache.put(b"k1", identity("t2"), time.monotonic() + 60, mark)  # alice: revoked
    assert cache.put(b"k2", identity("t3", "bob"), time.monotonic() + 60, mark)
    assert cache.put(b"k3", None, time.monotonic() + 60, mark)  # a "no" is always safe
    old = cache.mark()
    for n in range(2000):  # more events than the journal holds
        cache.invalidate(Invalidation("token", ids=frozenset({f"x{n}"})))
    assert not cache.put(b"k4", identity("t4", "carol"), time.monotonic() + 60, old)


def test_cache_indexes_and_limits() -> None:
    cache = AnswerCache(max_entries=3)
    now = time.monotonic()
    for n, (user, app) in enumerate([("alice", "web"), ("alice", "mobile"), ("bob", "web")]):
        cache.put(f"k{n}".encode(), identity(f"t{n}", user, app), now + 60, cache.mark())
    one_app = Invalidation("user", app_id="mobile", user_id="alice", one_app=True)
    assert cache.invalidate(one_app) == 1
    assert cache.invalidate(Invalidation("app", app_id="web")) == 2
    assert len(cache) == 0
    for n in range(5):
        cache.put(f"k{n}".encode(), identity(f"t{n}"), now + 60, cache.mark())
    assert len(cache) == 3 and cache.get(b"k0", now) is None and cache.get(b"k4", now)
    assert cache.get(b"k4", now + 61) is None and len(cache) == 2


def test_a_users_jwt_cut_off_drops_that_users_answers() -> None:
    cache = AnswerCache()
    now = time.monotonic()
    for n, (user, app) in enumerate([("alice", "web"), ("alice", "mobile"), ("bob", "web")]):
        cache.put(f"k{n}".encode(), identity(f"t{n}", user, app), now + 60, cache.mark())
    one_app = Invalidation("jwt", app_id="mobile", user_id="alice")
    assert cache.invalidate(one_app) == 1 and cache.get(b"k0", now) is not None
    assert cache.invalidate(Invalidation("jwt", user_id="alice")) == 1
    denied = Invalidation("jwt", app_id="web", ids=frozenset({"t2"}), user_id="bob")
    assert cache.invalidate(Invalidation("jwt", ids=frozenset({"t9"}), user_id="bob")) == 0
    assert cache.invalidate(denied) == 1 and len(cache) == 0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("max-age=5, must-revalidate", 5), ("no-store", 0), ("", 0), ("public,max-age=30", 30),
     ("s-maxage=9", 0), ("no-cache, max-age=5", 0)],
)  # fmt: skip
def test_max_age(header: str, seconds: int) -> None:
    assert max_age(header) == seconds
