"""GatewayClient's local JWT mode against the real service, on every backend: JWTs verified
in the gateway with the service's keys (served by a local JWKS endpoint, rotated), revocations
applied from the feed (replayed at start, then live), no request per check, the same verdict
as the service, and fail-closed when the feed is lost for longer than the grace."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import jwt as pyjwt
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from helpers import ADMIN_HEADERS, add_clients, all_keys, bearer, client_entry
from jwt_keys import AUDIENCE, ISSUER, SigningKey, standard_claims
from test_client import Service

from service import client as client_module
from service.api.responses import STORE
from service.client import GatewayClient, GatewayError
from service.events import EventKind, RevocationEvent
from service.gateway_jwt import CLOCK_MARGIN_MS, JwtRevocations, LocalJwt, StaleState
from service.jwks_fetch import JwksFetcher
from service.jwt_verify import JwtClaims, JwtPolicy
from service.settings import Settings

GATEWAY_SECRET = "tkc_test-jwt-gateway-secret-0123456789"
GATEWAY = bearer(GATEWAY_SECRET)["Authorization"]
SIGNER, ROTATED = SigningKey.new("ES256", "first"), SigningKey.new("EdDSA", "second")


class Issuer:
    """The identity provider's jwks_uri, whose keys a test may rotate."""

    def __init__(self) -> None:
        self.keys = [SIGNER]

    async def jwks(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [key.jwk() for key in self.keys]})


@pytest.fixture
def clients_file(clients_file: Path) -> Path:
    entry = client_entry("jwt-gateway", GATEWAY_SECRET, ["introspect"], ["*"])
    return add_clients(clients_file, entry)


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    idp, app = Issuer(), web.Application()
    app.router.add_get("/jwks.json", idp.jwks)
    server = TestServer(app)
    await server.start_server()
    try:
        yield idp, str(server.make_url("/jwks.json"))
    finally:
        await server.close()


@pytest.fixture
async def service(
    redis_url: str | None, clients_file: Path, issuer: tuple[Issuer, str]
) -> AsyncIterator[Service]:
    settings = Settings(
        redis_url=redis_url,
        clients_file=str(clients_file),
        feed_heartbeat=1,
        jwt_jwks_url=issuer[1],
        jwt_issuers=(ISSUER,),
        jwt_audience=AUDIENCE,
        jwt_max_ttl=3600,
    )
    running = Service(settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def gateway(service: Service) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(
        service.url, authorization=GATEWAY, local_jwt=True, jwt_grace=1.0, backoff=(0.05, 0.2)
    ) as client:
        yield client


async def eventually(condition: Callable[[], Any], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "still not true"
        await asyncio.sleep(0.01)


async def _authz(service: Service, token: str) -> bool:
    """The service's own verdict (GET /v1/authz, the token its only credential)."""
    async with aiohttp.ClientSession() as session:
        response = await session.get(service.url + "/v1/authz", headers=bearer(token))
        assert response.status in (200, 401), await response.text()
        return response.status == 200


async def _revoked(gateway: GatewayClient, token: str) -> bool:
    return await gateway.check(token) is None


async def _next_second() -> None:
    now = time.time()
    await asyncio.sleep(1.001 - (now - int(now)))


async def test_jwts_are_checked_locally_and_revocations_reach_them(
    service: Service, gateway: GatewayClient
) -> None:
    alice, bob, carol = SIGNER.sign(), SIGNER.sign(sub="bob"), SIGNER.sign(sub="carol", azp="m")
    identity = await gateway.check(alice)
    assert identity is not None
    claims = pyjwt.decode(alice, options={"verify_signature": False})
    assert (identity.token_id, identity.user_id, identity.app_id) == (claims["jti"], "alice", "web")
    assert identity.scopes == ("read", "write") and identity.expires_at == claims["exp"] * 1000
    assert await gateway.check(bob) is not None and await gateway.check(carol) is not None
    before = service.count("/v1/authz")
    for _ in range(100):
        assert await gateway.check(alice) == identity
    assert service.count("/v1/authz") == before == 0  # zero round trips

    # A jti denied (by value), a user's JWTs cut off, an app's JWTs cut off.
    await service.call("POST", "/v1/jwt/revoke", json={"token": alice})
    await eventually(lambda: _revoked(gateway, alice))
    await service.call("DELETE", "/v1/users/bob/tokens")
    await eventually(lambda: _revoked(gateway, bob))
    await service.call("DELETE", "/v1/apps/m/tokens")
    await eventually(lambda: _revoked(gateway, carol))
    # A jti denied without its issuer named: under every configured issuer.
    dave = SIGNER.sign(sub="dave")
    assert await gateway.check(dave) is not None
    jti = pyjwt.decode(dave, options={"verify_signature": False})["jti"]
    await service.call("POST", "/v1/jwt/revoke", json={"jti": jti, "exp": int(time.time()) + 60})
    await eventually(lambda: _revoked(gateway, dave))
    # JWTs issued after a cut-off are not cut off (iat has whole seconds: the next one).
    await _next_second()
    assert await gateway.check(SIGNER.sign(sub="bob")) is not None
    assert await gateway.check(SIGNER.sign(sub="carol", azp="m")) is not None
    assert service.count("/v1/authz") == 0


async def test_a_gateway_started_later_replays_the_revocations_of_the_jwt_lifetime(
    service: Service,
) -> None:
    denied, cut_off, other_app = SIGNER.sign(), SIGNER.sign(sub="bob"), SIGNER.sign(azp="m")
    kept = SIGNER.sign(sub="erin")
    await service.call("POST", "/v1/jwt/revoke", json={"token": denied})
    await service.call("DELETE", "/v1/users/bob/tokens")
    await service.call("DELETE", "/v1/apps/m/tokens")
    async with GatewayClient(service.url, authorization=GATEWAY, local_jwt=True) as gateway:
        assert await gateway.check(denied) is None
        assert await gateway.check(cut_off) is None
        assert await gateway.check(other_app) is None
        assert await gateway.check(kept) is not None
        assert gateway.jwt is not None and len(gateway.jwt.revocations) == 3
    assert service.count("/v1/authz") == 0


async def test_local_verdicts_are_the_services(service: Service, gateway: GatewayClient) -> None:
    now = int(time.time())
    impostor = SigningKey.new("RS256", "first")
    forged = SIGNER.sign()[:-8] + "AAAAAAAA"
    unsigned = _crafted({"alg": "none", "kid": "first"}, b"x")
    tokens = {
        "valid": SIGNER.sign(),
        "expired": SIGNER.sign(iat=now - 100, exp=now - 10),
        "not yet valid": SIGNER.sign(nbf=now + 60),
        "issued in the future": SIGNER.sign(iat=now + 60, exp=now + 120),
        "other audience": SIGNER.sign(aud="https://elsewhere.test"),
        "other issuer": SIGNER.sign(iss="https://elsewhere.test"),
        "no jti": SIGNER.sign(jti=None),
        "jti with a quote": SIGNER.sign(jti='a"b'),
        "too long a lifetime": SIGNER.sign(iat=now, exp=now + 3601),
        "no app claim": SIGNER.sign(azp=None),
        "scopes as a list": SIGNER.sign(scope=None, scp=["read"]),
        "forged signature": forged,
        "alg none": unsigned,
        "HS256 keyed with the public key": _hmac_with_public_key(),
        "another key, same kid": impostor.sign(),
    }
    await service.call("POST", "/v1/jwt/revoke", json={"token": tokens["valid"]})
    tokens["denied"] = tokens.pop("valid")
    tokens["valid"] = SIGNER.sign()
    await eventually(lambda: _revoked(gateway, tokens["denied"]))
    for name, token in tokens.items():
        local = await gateway.check(token) is not None
        assert local == await _authz(service, token), name
    assert await gateway.check(tokens["valid"]) is not None
    assert service.count("/v1/authz") == len(tokens)  # the service's own verdicts only


def _hmac_with_public_key() -> str:
    """The algorithm-confusion attack: HS256 with the issuer's public key as the secret."""
    header = {"alg": "HS256", "kid": "first", "typ": "JWT"}
    pem = Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    public = SIGNER.private.public_key().public_bytes(*pem)
    signing_input = _crafted(header, b"").rstrip(".").encode()
    return _crafted(header, hmac.new(public, signing_input, hashlib.sha256).digest())


def _crafted(header: dict[str, str], signature: bytes) -> str:
    """A JWT of the standard claims with this header and signature, however made."""
    head, body = _b64(orjson.dumps(header)), _b64(orjson.dumps(standard_claims()))
    return f"{head}.{body}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_a_rotated_key_is_fetched_through_the_service(
    service: Service,
    gateway: GatewayClient,
    issuer: tuple[Issuer, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await gateway.check(SIGNER.sign()) is not None
    idp, _ = issuer
    idp.keys = [SIGNER, ROTATED]
    monkeypatch.setattr(JwksFetcher, "MIN_REFETCH_S", 0.0)
    monkeypatch.setattr(client_module, "KEYS_REFETCH_S", 0.0)
    rotated = ROTATED.sign()
    assert await gateway.check(rotated) is not None  # unknown kid: /v1/jwt/config?kid=
    assert service.count("/v1/jwt/config") == 2 and service.count("/v1/authz") == 0
    # Made-up kids: one more fetch, then rate-limited; the service answers for them (401).
    stranger = SigningKey.new("ES256", "stranger")
    assert await gateway.check(stranger.sign()) is None
    monkeypatch.setattr(client_module, "KEYS_REFETCH_S", 3600.0)
    assert await gateway.check(stranger.sign()) is None
    assert service.count("/v1/jwt/config") == 3 and service.count("/v1/authz") == 2


async def test_the_feed_lost_longer_than_the_grace_fails_closed(
    service: Service, gateway: GatewayClient
) -> None:
    token = SIGNER.sign()
    assert await gateway.check(token) is not None
    await service.stop()
    await eventually(lambda: _not_connected(gateway))
    assert await gateway.check(token) is not None  # within a heartbeat and the grace (2 s)
    await asyncio.sleep(2.2)
    with pytest.raises(GatewayError, match="nothing heard"):
        await gateway.check(token)
    with pytest.raises(GatewayError):
        await gateway.check("an-opaque-token")  # asked of the service, which is down
    await service.start()

    async def answers() -> bool:
        try:
            return await gateway.check(token) is not None
        except GatewayError:
            return False

    await eventually(answers, seconds=10)


async def _not_connected(gateway: GatewayClient) -> bool:
    return not gateway.feed_connected


async def test_no_jwt_is_answered_before_the_replay_completes(service: Service) -> None:
    await service.stop()
    async with GatewayClient(
        service.url, authorization=GATEWAY, local_jwt=True, timeout=0.3
    ) as gateway:
        with pytest.raises(GatewayError, match="not synced"):
            await gateway.check(SIGNER.sign())


async def test_events_lost_make_the_gateway_replay_by_time(
    service: Service, gateway: GatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = SIGNER.sign()
    assert await gateway.check(token) is not None
    await service.call("POST", "/v1/jwt/revoke", json={"token": SIGNER.sign()})
    await eventually(lambda: _has_position(gateway))
    # The stream is wiped (the embedded store loses it with the restart anyway): the gateway
    # resumes from an id the feed no longer knows, gets a reset, and replays by time.
    assert service.server is not None
    redis = await service.server.app[STORE].client()
    for key in [key for key in await all_keys(redis) if key.endswith(b"events")]:
        await cast(Any, redis).delete(key)
    connections = gateway.feed_connections
    await service.stop()
    await service.start()
    await eventually(lambda: _synced_after(gateway, connections), seconds=10)
    assert "rebuilding the JWT deny-list" in caplog.text
    assert gateway.last_event_id is not None
    assert await gateway.check(token) is not None


async def _has_position(gateway: GatewayClient) -> bool:
    return gateway.last_event_id not in (None, "0-0")


async def _synced_after(gateway: GatewayClient, connections: int) -> bool:
    local = gateway.jwt
    return gateway.feed_connections > connections and local is not None and local.synced


def _claims(token: str) -> JwtClaims:
    body = pyjwt.decode(token, options={"verify_signature": False})
    return JwtClaims(
        ISSUER, body["jti"], body["sub"], body["azp"], ("read",), body["iat"] * 1_000_000,
        body["exp"] * 1000,
    )  # fmt: skip


# --- the state alone ------------------------------------------------------------------------


def test_the_state_applies_and_forgets_as_jwt_lifetimes_allow() -> None:
    state = JwtRevocations(("https://a", "https://b"), max_ttl_s=600, leeway_s=5)
    now = 1_800_000_000_000
    state.apply(RevocationEvent(EventKind.JWT, "", ids=("j1",), expires_at=now + 1000), now)
    state.apply(RevocationEvent(EventKind.JWT, "web", ids=("j2",), issuer="https://a"), now)
    state.apply(RevocationEvent(EventKind.JWT, "", user_id="u", revoked_before=now - 10_000), now)
    state.apply(RevocationEvent(EventKind.JWT, "m", user_id="v", revoked_before=now), now)
    state.apply(RevocationEvent(EventKind.APP, "n", revoked_before=now - 5000), now)
    # An older cut-off never lowers a newer one.
    state.apply(RevocationEvent(EventKind.APP, "n", revoked_before=now - 9000), now)
    assert set(state.denied) == {("https://a", "j1"), ("https://b", "j1"), ("https://a", "j2")}
    assert state.app_cutoffs == {"n": now - 5000}

    def claims(issuer: str, jti: str, user: str, app: str, iat_ms: int) -> JwtClaims:
        return JwtClaims(issuer, jti, user, app, (), iat_ms * 1000, now + 60_000)

    assert state.revoked(claims("https://b", "j1", "x", "web", now))
    assert not state.revoked(claims("https://b", "j2", "x", "web", now))
    assert state.revoked(claims("https://a", "k", "u", "any", now - 11_000))
    assert not state.revoked(claims("https://a", "k", "u", "any", now - 10_000))
    assert state.revoked(claims("https://a", "k", "v", "m", now - 1))
    assert not state.revoked(claims("https://a", "k", "v", "web", now - 1))
    assert state.revoked(claims("https://a", "k", "w", "n", now - 6000))
    # j1 is kept past its exp by the leeway and a clock margin, then forgotten; cut-offs once
    # older than any JWT that can still be accepted.
    state.prune(now + 1000 + 5000 + CLOCK_MARGIN_MS - 1)
    assert ("https://a", "j1") in state.denied
    state.prune(now + 1000 + 5000 + CLOCK_MARGIN_MS)
    assert ("https://a", "j1") not in state.denied
    later = now + 605_000 + CLOCK_MARGIN_MS - 1  # v's cut-off is 1 ms short of forgotten
    state.prune(later)
    assert ("v", "m") in state.user_cutoffs and ("u", "*") not in state.user_cutoffs
    assert state.replay_since(later) == later - 610_000 - CLOCK_MARGIN_MS
    state.prune(later + 1)
    assert not state.user_cutoffs


def test_the_grace_runs_from_the_last_line_heard() -> None:
    clock = [100.0]
    verifier: Any = type("V", (), {"policy": _POLICY})()
    local = LocalJwt(verifier, grace=2.0, clock=lambda: clock[0])
    claims = JwtClaims(ISSUER, "j", "u", "a", (), 0, 0)
    with pytest.raises(StaleState):
        local.identity(claims)  # not synced yet
    local.feed_ready(heartbeat=1.0)
    assert local.identity(claims) is not None
    clock[0] += 3.0  # a heartbeat and the grace since the last line
    assert local.identity(claims) is not None
    clock[0] += 0.01
    with pytest.raises(StaleState, match="nothing heard"):
        local.identity(claims)
    local.heard()  # a heartbeat: fresh again
    assert local.identity(claims) is not None
    local.start_over()
    with pytest.raises(StaleState, match="not complete"):
        local.identity(claims)


_POLICY = JwtPolicy((ISSUER,), None, 600, 0, "sub", ("azp",))


def test_local_mode_needs_the_feed() -> None:
    with pytest.raises(ValueError, match="feed"):
        GatewayClient("http://x", local_jwt=True, follow_feed=False)


async def test_the_config_is_for_api_clients_only(service: Service) -> None:
    async with aiohttp.ClientSession() as session:
        anonymous = await session.get(service.url + "/v1/jwt/config")
        assert anonymous.status == 401
        answer = await session.get(service.url + "/v1/jwt/config", headers=ADMIN_HEADERS)
        body = await answer.json()
    assert body["issuers"] == [ISSUER] and body["audience"] == AUDIENCE
    assert body["max_ttl"] == 3600 and body["leeway"] == 0
    assert [key["kid"] for key in body["jwks"]["keys"]] == ["first"]
    assert all("d" not in key for key in body["jwks"]["keys"])  # public keys only
