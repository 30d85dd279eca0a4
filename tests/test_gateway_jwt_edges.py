# ruff: noqa: F811  (fixtures imported from test_gateway_jwt)
"""GatewayClient's local JWT mode, the cases a review found: a gateway limited to some apps,
a silent feed, a policy change, the replay window with a leeway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt as pyjwt
import pytest
from helpers import add_clients, bearer, client_entry
from test_client import Service
from test_gateway_jwt import (  # noqa: F401
    GATEWAY,
    GATEWAY_SECRET,
    SIGNER,
    _authz,
    issuer,
    service,
)

from service.client import GatewayClient, GatewayError
from service.gateway_jwt import CLOCK_MARGIN_MS

WEB_SECRET = "tkc_test-web-gateway-secret-0123456789"
WEB_GATEWAY = bearer(WEB_SECRET)["Authorization"]


@pytest.fixture
def clients_file(clients_file: Path) -> Path:
    return add_clients(
        clients_file,
        client_entry("jwt-gateway", GATEWAY_SECRET, ["introspect"], ["*"]),
        client_entry("web-gw", WEB_SECRET, ["introspect"], ["web"]),
    )


@pytest.fixture
async def web_gateway(service: Service) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(service.url, authorization=WEB_GATEWAY, local_jwt=True) as client:
        yield client


async def test_a_gateway_limited_to_some_apps_checks_jwts_with_the_service(
    service: Service, web_gateway: GatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Its feed lacks other apps' revocations and those of no app (a user's cut-off of every
    app, a jti denied without an app): the service refuses it the policy, and its checks of
    JWTs go to the service, which knows them all."""
    bob, dave = SIGNER.sign(sub="bob"), SIGNER.sign(sub="dave")
    erin = SIGNER.sign(sub="erin", azp="m")  # of an app outside the gateway's client
    await service.call("DELETE", "/v1/users/bob/tokens")  # every app: an event of no app
    jti = pyjwt.decode(dave, options={"verify_signature": False})["jti"]
    await service.call("POST", "/v1/jwt/revoke", json={"jti": jti, "exp": int(time.time()) + 60})
    await service.call("DELETE", "/v1/apps/m/tokens")
    for token in (bob, dave, erin):
        assert await web_gateway.check(token) is None
    assert await web_gateway.check(SIGNER.sign(sub="frank")) is not None
    assert web_gateway.jwt is None and service.count("/v1/authz") == 4
    assert "local JWT checks need an API client of every app" in caplog.text
    async with aiohttp.ClientSession() as session:
        answer = await session.get(service.url + "/v1/jwt/config", headers=bearer(WEB_SECRET))
        assert answer.status == 403


async def test_grace_counts_from_the_last_message_not_from_the_detected_loss() -> None:
    """A feed that goes silent (half-open TCP, partition): the gateway keeps answering for
    3*heartbeat+1 (its silence timeout) *plus* the grace, not the grace alone."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from jwt_keys import AUDIENCE, ISSUER

    from service.jwt_verify import JwtPolicy

    policy = JwtPolicy((ISSUER,), AUDIENCE, 3600, 0, "sub", ("azp",))

    async def config(_request: web.Request) -> web.Response:
        return web.json_response({**policy.public(), "jwks": {"keys": [SIGNER.jwk()]}})

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'id: 1-0\nevent: ready\ndata: {"heartbeat":1}\n\n')
        await asyncio.sleep(3600)  # then silence: no heartbeat, connection left open
        return response

    app = web.Application()
    app.router.add_get("/v1/jwt/config", config)
    app.router.add_get("/v1/events", events)
    server = TestServer(app)
    await server.start_server()
    try:
        async with GatewayClient(
            str(server.make_url("")), local_jwt=True, jwt_grace=0.5
        ) as gateway:
            token = SIGNER.sign()
            assert await gateway.check(token) is not None
            last_heard = time.monotonic()
            await asyncio.sleep(2.0)  # 4 x the grace since the last message
            with pytest.raises(GatewayError):  # the deny-list is stale
                answer = await gateway.check(token)
                print(
                    f"answered {answer} {time.monotonic() - last_heard:.1f} s after the "
                    "last message, grace 0.5 s"
                )
    finally:
        await server.close()


def test_replay_window_covers_every_denial_the_service_still_holds() -> None:
    """leeway 120 s: a JWT issued 'in the future' by the leeway (accepted), denied at T0, is
    denied by the service until exp + leeway + 60 s; a gateway started before then must
    replay its event."""
    from service.gateway_jwt import JwtRevocations

    max_ttl, leeway = 600, 120
    t0 = 1_800_000_000_000  # ms: the denial's event is written
    exp = t0 + (leeway + max_ttl) * 1000  # iat = t0 + leeway (accepted), exp = iat + max_ttl
    service_denies_until = exp + leeway * 1000 + CLOCK_MARGIN_MS  # jwt_rules.deny_token
    started = t0 + (max_ttl + leeway) * 1000 + CLOCK_MARGIN_MS + 10_000  # a gateway starts
    assert started < exp + leeway * 1000  # the gateway's verifier still accepts the JWT
    assert started < service_denies_until  # the service still denies it
    since = JwtRevocations(("i",), max_ttl, leeway).replay_since(started)
    assert since <= t0, f"replay starts {since - t0} ms after the denial was written"


async def test_a_policy_change_reaches_the_gateway(service: Service) -> None:
    """The service restarts with a narrower policy (an audience changed, or a shorter
    max_ttl): the gateway refetches /v1/jwt/config but keeps judging by the old policy."""
    import asyncio
    import dataclasses

    async with GatewayClient(
        service.url, authorization=GATEWAY, local_jwt=True, backoff=(0.05, 0.2)
    ) as gateway:
        token = SIGNER.sign()  # lifetime 300 s (jwt_keys.standard_claims)
        assert await gateway.check(token) is not None
        await service.stop()
        service.settings = dataclasses.replace(service.settings, jwt_max_ttl=120)
        await service.start()
        connections = gateway.feed_connections
        for _ in range(200):
            if gateway.feed_connections > connections:
                break
            await asyncio.sleep(0.05)
        await gateway._fetch_keys()  # the 5-minute refresh, now
        assert not await _authz(service, token)  # the service: lifetime above max_ttl
        assert await gateway.check(token) is None, "gateway still uses the old policy"
