"""Fixtures: real Redis servers for the session, and the app on every backend.

``backend`` runs a test on a standalone redis-server, a 3-master Redis Cluster (both started
here, on free ports) and the embedded in-memory store. Servers are flushed before each test;
the suite never touches a Redis it did not start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ADMIN_HEADERS, ADMIN_ID, ADMIN_SECRET, client_entry, write_clients
from redis_servers import RedisCluster, RedisServer

from service.api.responses import STORE
from service.app import create_app
from service.redis_client import AnyRedis
from service.settings import Settings

BACKENDS = ["standalone", "cluster", "embedded"]
AiohttpClient = Callable[..., Any]


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
def clients_file(tmp_path: Path) -> Path:
    """A clients file with one admin client (for all apps): what ``client`` authenticates as."""
    admin = client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"])
    return write_clients(tmp_path / "clients.json", admin)


@pytest.fixture
def settings(redis_url: str | None, clients_file: Path) -> Settings:
    return Settings(redis_url=redis_url, clients_file=str(clients_file))


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient[Any, Any]:
    """The app, called as the admin client of ``clients_file``."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    return client


@pytest.fixture
async def redis(client: TestClient[Any, Any]) -> AsyncIterator[AnyRedis]:
    """The app's own Redis client, to assert on what is stored."""
    yield await client.app[STORE].client()
