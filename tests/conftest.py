"""Fixtures: real Redis servers for the session, and the app on every backend.

``backend`` runs a test on a standalone redis-server, a 3-master Redis Cluster (both started
here, on free ports) and the embedded in-memory store. Servers are flushed before each test;
the suite never touches a Redis it did not start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis_servers import RedisCluster, RedisServer

from service.api.responses import STORE
from service.app import create_app
from service.redis_client import AnyRedis
from service.settings import Settings

BACKENDS = ["standalone", "cluster", "embedded"]
AiohttpClient = Callable[[web.Application], Any]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def redis_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "embedded":
        return None
    server: RedisServer | RedisCluster = request.getfixturevalue(
        "redis_server" if backend == "standalone" else "redis_cluster"
    )
    server.flush()
    return server.url


@pytest.fixture
def settings(redis_url: str | None) -> Settings:
    return Settings(redis_url=redis_url)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
async def redis(client: TestClient[Any, Any]) -> AsyncIterator[AnyRedis]:
    """The app's own Redis client, to assert on what is stored."""
    yield await client.app[STORE].client()
