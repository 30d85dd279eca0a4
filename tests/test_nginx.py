"""A real nginx, configured by deploy/nginx/tokenstore.conf.template, in front of a tiny
upstream, asking the real service (standalone Redis) about every request's bearer token."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from helpers import ADMIN_HEADERS
from nginx_server import TEMPLATE, NginxServer, render
from redis_servers import RedisServer

from service.app import create_app
from service.identity import decode_header
from service.settings import Settings

CACHE_MAX_AGE = 2
# nginx counts cache lifetimes in whole seconds: an answer may live up to 1 s past max-age.
NGINX_CLOCK = 1.0
POLL = 0.05


@dataclass
class Stack:
    service: BaseTestServer
    upstream: BaseTestServer
    upstream_calls: list[dict[str, str]]
    authz_calls: list[float]

    def address(self, server: BaseTestServer) -> str:
        return f"127.0.0.1:{server.port}"

    # Issuing and revoking go straight to the service, as its admin client; nginx only ever
    # calls the open /v1/authz.
    async def issue(self, user_id: str, **extra: Any) -> Any:
        async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
            url = self.service.make_url("/v1/tokens")
            response = await session.post(url, json={"user_id": user_id, "app_id": "web", **extra})
            assert response.status == 201, await response.text()
            return await response.json()

    async def revoke(self, token_id: str) -> None:
        async with aiohttp.ClientSession(headers=ADMIN_HEADERS) as session:
            response = await session.delete(self.service.make_url(f"/v1/tokens/{token_id}"))
            assert (await response.json()) == {"revoked": [token_id]}


@pytest.fixture
async def stack(redis_server: RedisServer, clients_file: Path) -> AsyncIterator[Stack]:
    redis_server.flush()
    settings = Settings(
        redis_url=redis_server.url, clients_file=str(clients_file), cache_max_age=CACHE_MAX_AGE
    )
    app = create_app(settings)
    authz_calls: list[float] = []

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/v1/authz":
            authz_calls.append(time.monotonic())
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(count)
    upstream_calls: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen = dict(request.headers)
        seen["method"], seen["body"] = request.method, await request.text()
        upstream_calls.append(seen)
        return web.json_response(seen)

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", echo)
    async with TestServer(app) as service, TestServer(upstream_app) as upstream:
        yield Stack(service, upstream, upstream_calls, authz_calls)


@pytest.fixture
def nginx(stack: Stack) -> Iterator[NginxServer]:
    with NginxServer(stack.address(stack.service), stack.address(stack.upstream)) as server:
        yield server


async def get(nginx: NginxServer, token: str | None, **kwargs: Any) -> tuple[int, Any, Any]:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session:
        method = kwargs.pop("method", "GET")
        async with session.request(
            method, nginx.url + "/api/x?y=1", headers=headers, **kwargs
        ) as response:
            body = await response.json() if response.status == 200 else await response.text()
            return response.status, response.headers, body


async def test_live_token_passes_with_its_identity(stack: Stack, nginx: NginxServer) -> None:
    body = await stack.issue("ünï cødé", scopes=["read", "write"])
    spoofed = {"X-Token-User": "admin", "X-Token-Scopes": "admin"}
    status, _, seen = await get(nginx, body["token"], headers=spoofed)
    assert status == 200, nginx.error_log
    assert decode_header(seen["X-Token-User"]) == "ünï cødé"
    assert (seen["X-Token-App"], seen["X-Token-Scopes"]) == ("web", "read write")
    assert seen["X-Token-Id"] == body["id"]
    # The subrequest is a GET without body whatever the client's request.
    status, _, seen = await get(nginx, body["token"], method="POST", data=b"payload")
    assert (status, seen["method"], seen["body"]) == (200, "POST", "payload")
    assert len(stack.authz_calls) == 1  # the second request was answered from nginx's cache


async def test_no_invalid_or_revoked_token_is_refused(stack: Stack, nginx: NginxServer) -> None:
    status, headers, _ = await get(nginx, None)
    assert (status, headers["WWW-Authenticate"]) == (401, "Bearer")
    status, headers, _ = await get(nginx, "forged-token")
    assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer error="invalid_token"')
    body = await stack.issue("alice")
    await stack.revoke(body["id"])
    assert (await get(nginx, body["token"]))[0] == 401
    assert stack.upstream_calls == []


async def test_revoked_token_is_refused_within_the_cache_bound(
    stack: Stack, nginx: NginxServer
) -> None:
    body = await stack.issue("alice")
    assert (await get(nginx, body["token"]))[0] == 200
    await stack.revoke(body["id"])
    revoked_at = time.monotonic()
    assert (await get(nginx, body["token"]))[0] == 200  # the cached answer: the bound is real
    status = 200
    while status == 200 and time.monotonic() - revoked_at < CACHE_MAX_AGE + NGINX_CLOCK + 1:
        await asyncio.sleep(POLL)
        status = (await get(nginx, body["token"]))[0]
    elapsed = time.monotonic() - revoked_at
    assert status == 401
    assert elapsed <= CACHE_MAX_AGE + NGINX_CLOCK + 5 * POLL, elapsed
    assert len(stack.authz_calls) == 2  # one miss, then one once the cached answer went stale


async def test_without_the_cache_a_revocation_is_seen_at_once(stack: Stack) -> None:
    address = stack.address
    with NginxServer(address(stack.service), address(stack.upstream), cache=False) as nginx:
        body = await stack.issue("alice")
        assert (await get(nginx, body["token"]))[0] == 200
        assert (await get(nginx, body["token"]))[0] == 200
        await stack.revoke(body["id"])
        assert (await get(nginx, body["token"]))[0] == 401
        assert len(stack.authz_calls) == 3


def test_every_placeholder_of_the_example_is_documented_and_filled() -> None:
    text = TEMPLATE.read_text()
    names = {"GATEWAY_LISTEN", "TOKENSTORE_ADDRESS", "APP_ADDRESS", "AUTHZ_CACHE",
             "AUTHZ_CACHE_PATH"}  # fmt: skip
    rendered = render(text, dict.fromkeys(names, "x"))
    assert re.search(r"\$\{[A-Z_]+\}", rendered) is None
    for name in names:
        assert f"#   {name} " in text, name
    with pytest.raises(KeyError):
        render(text, {})


async def test_tokenstore_down_is_503_never_a_pass(stack: Stack, nginx: NginxServer) -> None:
    body = await stack.issue("alice")
    await stack.service.close()
    status, headers, _ = await get(nginx, body["token"])
    assert (status, headers["Retry-After"]) == (503, "1")
    assert stack.upstream_calls == []
