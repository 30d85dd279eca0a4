"""Fail closed: with Redis unreachable every call is a 503 with Retry-After, introspection is
never active, the process still starts, and it recovers when Redis comes back."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from aiohttp import web
from helpers import ADMIN_HEADERS
from redis_servers import REDIS_SERVER, RedisServer, free_port

from service import tokens
from service.app import create_app
from service.settings import Settings

FAST_TIMEOUT = 0.3


async def assert_unavailable(client: Any, token: str) -> None:
    for method, path, body in [
        ("POST", "/v1/introspect", {"token": token}),
        ("POST", "/v1/tokens", {"user_id": "u", "app_id": "a"}),
        ("GET", "/v1/users/u/tokens", None),
        ("DELETE", "/v1/users/u/tokens", None),
        ("DELETE", "/v1/apps/a/tokens", None),
    ]:
        response = await client.request(method, path, json=body)
        assert response.status == 503, (method, path)
        assert response.headers["Retry-After"] == "1"
        answer = await response.json()
        assert answer["error"] == "unavailable"
        assert "active" not in answer
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200


def _app(url: str, clients_file: Path) -> web.Application:
    return create_app(
        Settings(redis_url=url, redis_timeout=FAST_TIMEOUT, clients_file=str(clients_file))
    )


async def test_redis_going_away_fails_closed(aiohttp_client: Any, clients_file: Path) -> None:
    server = RedisServer()
    server.start()
    try:
        client = await aiohttp_client(_app(server.url, clients_file), headers=ADMIN_HEADERS)
        issued = await (
            await client.post("/v1/tokens", json={"user_id": "u", "app_id": "a"})
        ).json()
        assert (await client.get("/readyz")).status == 200
    finally:
        server.stop()
    await assert_unavailable(client, issued["token"])


@pytest.fixture
def unstarted_port() -> Iterator[int]:
    yield free_port()


def start_redis_on(port: int) -> subprocess.Popen[bytes]:
    workdir = tempfile.mkdtemp()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with sync_redis.Redis(port=port, socket_timeout=0.2) as probe:  # closed: no leak
                if probe.ping():
                    return proc
        except sync_redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


async def test_starts_without_redis_then_recovers(
    aiohttp_client: Any, unstarted_port: int, clients_file: Path
) -> None:
    url = f"redis://127.0.0.1:{unstarted_port}/0"
    client = await aiohttp_client(_app(url, clients_file), headers=ADMIN_HEADERS)
    well_formed = tokens.mint(tokens.new_id("0" * 16))
    await assert_unavailable(client, well_formed)  # never replaced by memory
    proc = start_redis_on(unstarted_port)
    try:
        assert (await client.get("/readyz")).status == 200
        response = await client.post("/v1/tokens", json={"user_id": "u", "app_id": "a"})
        assert response.status == 201
        token = (await response.json())["token"]
        answer = await client.post("/v1/introspect", json={"token": token})
        assert (await answer.json())["active"] is True
    finally:
        proc.terminate()
        proc.wait(10)
