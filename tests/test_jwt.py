"""JWT revocation through the API, on every backend: JWTs accepted where a token is expected,
denied by jti (POST /v1/jwt/revoke), cut off per user and per app, and the feed's events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import (
    ADMIN_HEADERS,
    add_clients,
    all_keys,
    basic,
    bearer,
    call_as,
    client_entry,
    introspect,
    issue,
)
from jwt_keys import AUDIENCE, ISSUER, SigningKey, write_jwks

from service.app import create_app
from service.jwt_rules import CLOCK_MARGIN_MS
from service.redis_client import AnyRedis
from service.settings import Settings

Client = TestClient[Any, Any]
KEYS = [SigningKey.new("RS256", "rsa"), SigningKey.new("ES256", "ec"), SigningKey.new("EdDSA")]
RSA, EC, ED = KEYS


@pytest.fixture
def settings(redis_url: str | None, clients_file: Path, tmp_path: Path) -> Settings:
    jwks = write_jwks(tmp_path / "jwks.json", *KEYS)
    return Settings(
        redis_url=redis_url,
        clients_file=str(clients_file),
        jwt_jwks_file=str(jwks),
        jwt_issuers=(ISSUER,),
        jwt_audience=AUDIENCE,
    )


async def _active(client: Client, token: str) -> bool:
    answer = await introspect(client, token)
    assert set(answer) == {"active"} or answer["active"] is True
    return bool(answer["active"])


async def _next_second() -> None:
    """Until the clock's second changes: a JWT's iat has whole seconds."""
    now = time.time()
    await asyncio.sleep(1.001 - (now - int(now)))


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.alg)
async def test_a_jwt_is_introspected_like_our_tokens(client: Client, key: SigningKey) -> None:
    now = int(time.time())
    token = key.sign(jti="jwt-1", iat=now, exp=now + 120)
    answer = await introspect(client, token)
    assert answer == {
        "active": True, "id": "jwt-1", "user_id": "alice", "app_id": "web", "type": "JWT",
        "scopes": ["read", "write"], "client_name": None, "device_name": None,
        "metadata": None, "created_at": now * 1000, "expires_at": (now + 120) * 1000,
        "session_id": "jwt-1", "idle_ttl": 0, "last_used_at": now * 1000,
    }  # fmt: skip
    oauth = await client.post(
        "/oauth2/introspect", data={"token": token}, headers=basic("test-admin", "x")
    )
    assert oauth.status == 401  # the admin client authenticates with Bearer only
    form = await client.post("/oauth2/introspect", data={"token": token})
    assert await form.json() == {
        "active": True, "scope": "read write", "client_id": "web", "sub": "alice",
        "exp": now + 120, "iat": now, "token_type": "JWT", "jti": "jwt-1",
    }  # fmt: skip


async def test_authz_takes_a_jwt_with_cache_hints_never_past_its_exp(client: Client) -> None:
    token = EC.sign(exp=int(time.time()) + 3)
    status, headers, _ = await call_as(client, bearer(token), "GET", "/v1/authz?scope=read")
    assert status == 200
    assert (headers["X-Token-User"], headers["X-Token-App"]) == ("alice", "web")
    assert headers["Cache-Control"] in {f"max-age={s}, must-revalidate" for s in (1, 2, 3)}
    status, headers, _ = await call_as(client, bearer(token), "GET", "/v1/authz?scope=admin")
    assert status == 403
    expired = EC.sign(exp=int(time.time()) - 1)
    status, headers, _ = await call_as(client, bearer(expired), "GET", "/v1/authz")
    assert status == 401


async def test_invalid_and_foreign_jwts_are_inactive(client: Client) -> None:
    stranger = SigningKey.new("ES256", "rsa")  # our kid, another key: a forged signature
    assert not await _active(client, stranger.sign())
    assert not await _active(client, SigningKey.new("ES256", "unknown").sign())
    assert not await _active(client, EC.sign(iss="https://evil.test"))
    assert not await _active(client, EC.sign(aud="https://other.test"))


async def test_revoke_by_value_denies_until_exp(client: Client, redis: AnyRedis) -> None:
    exp = int(time.time()) + 600
    token, other = RSA.sign(jti="j-1", exp=exp), RSA.sign(jti="j-2")
    response = await client.post("/v1/jwt/revoke", json={"token": token})
    assert response.status == 200
    assert await response.json() == {"revoked": "j-1"}
    assert not await _active(client, token)
    assert await _active(client, other)
    status, _, _ = await call_as(client, bearer(token), "GET", "/v1/authz")
    assert status == 401
    keys = [k for k in await all_keys(redis) if k.startswith(b"ts:jd:")]
    assert len(keys) == 1
    # Forgotten when the JWT expires (a minute later: clocks may differ).
    assert await redis.pexpiretime(keys[0].decode()) == exp * 1000 + CLOCK_MARGIN_MS
    events = await (await client.get("/v1/users/alice/events")).json()
    assert [(e["kind"], e["ids"]) for e in events["events"]] == [("jwt", ["j-1"])]


async def test_revoke_by_jti(client: Client) -> None:
    token = ED.sign(jti="by-jti")
    body = {"jti": "by-jti", "exp": int(time.time()) + 300, "user_id": "alice"}
    response = await client.post("/v1/jwt/revoke", json=body)
    assert (response.status, await response.json()) == (200, {"revoked": "by-jti"})
    assert not await _active(client, token)
    same_jti = ED.sign(jti="shared")
    other_iss = {"jti": "shared", "exp": int(time.time()) + 300, "iss": "https://other.test"}
    assert (await client.post("/v1/jwt/revoke", json=other_iss)).status == 200
    assert await _active(client, same_jti)  # denied for another issuer only
    nulls = await client.post("/v1/jwt/revoke", json={**body, "user_id": None})
    assert nulls.status == 400
    both = await client.post("/v1/jwt/revoke", json={**body, "token": token})
    assert both.status == 400
    no_exp = await client.post("/v1/jwt/revoke", json={"jti": "x"})
    assert no_exp.status == 400
    garbage = await client.post("/v1/jwt/revoke", json={"token": "not-a-jwt"})
    assert garbage.status == 400


async def test_a_jwt_revokes_itself(client: Client) -> None:
    token, other_user = EC.sign(), EC.sign(sub="bob")
    status, _, _ = await call_as(
        client, bearer(token), "POST", "/v1/jwt/revoke", json={"token": other_user}
    )
    assert status == 400  # another user's JWT: not one this caller may name
    assert await _active(client, other_user)
    status, _, _ = await call_as(
        client, bearer(token), "POST", "/v1/jwt/revoke", json={"jti": "x", "exp": 2**31}
    )
    assert status == 403
    status, _, _ = await call_as(
        client, bearer(token), "POST", "/v1/jwt/revoke", json={"token": token}
    )
    assert status == 200
    assert not await _active(client, token)
    status, _, _ = await call_as(
        client, bearer(token), "POST", "/v1/jwt/revoke", json={"token": token}
    )
    assert status == 401  # revoked: no longer a credential


async def test_user_revocation_cuts_off_earlier_jwts(client: Client) -> None:
    ours = await issue(client, "alice", "web")
    before, bob = EC.sign(), EC.sign(sub="bob")
    other_app = EC.sign(azp="mobile")
    scoped = await client.delete("/v1/users/alice/tokens?app_id=mobile")
    assert scoped.status == 200
    assert not await _active(client, other_app)
    assert await _active(client, before)
    response = await client.delete("/v1/users/alice/tokens")
    assert response.status == 200
    assert not await _active(client, before)
    assert not await _active(client, ours["token"])
    assert await _active(client, bob)
    await _next_second()
    assert await _active(client, EC.sign())  # issued after the cut-off
    events = (await (await client.get("/v1/users/alice/events")).json())["events"]
    jwt_events = [e for e in events if e["kind"] == "jwt"]
    assert [(e["app_id"], e["scope"]) for e in jwt_events] == [("", None), ("mobile", "user_app")]


async def test_keeping_a_session_leaves_jwts_alone(client: Client) -> None:
    ours = await issue(client, "alice", "web")
    jwt = EC.sign()
    kept = await client.delete(f"/v1/users/alice/tokens?except={ours['id']}")
    assert kept.status == 200
    assert await _active(client, jwt)


async def test_app_revocation_cuts_off_earlier_jwts(client: Client) -> None:
    web, mobile = RSA.sign(), RSA.sign(azp="mobile")
    response = await client.delete("/v1/apps/web/tokens")
    assert response.status == 200
    assert not await _active(client, web)
    assert await _active(client, mobile)
    await _next_second()
    assert await _active(client, RSA.sign())


async def test_a_client_of_some_apps_revokes_their_jwts_only(
    aiohttp_client: Any, settings: Settings, clients_file: Path
) -> None:
    secret = "tkc_web-admin-secret-0123456789"
    add_clients(clients_file, client_entry("web-admin", secret, ["revoke"], ["web"]))
    client: Client = await aiohttp_client(create_app(settings), headers=bearer(secret))
    web, mobile = EC.sign(), EC.sign(azp="mobile")
    assert (await client.post("/v1/jwt/revoke", json={"token": mobile})).status == 400
    by_jti = {"jti": "x", "exp": int(time.time()) + 60}
    assert (await client.post("/v1/jwt/revoke", json=by_jti)).status == 403
    mobile_jti = {**by_jti, "app_id": "mobile"}
    assert (await client.post("/v1/jwt/revoke", json=mobile_jti)).status == 403
    assert (await client.post("/v1/jwt/revoke", json={**by_jti, "app_id": "web"})).status == 200
    assert (await client.post("/v1/jwt/revoke", json={"token": web})).status == 200
    status, _, _ = await call_as(client, ADMIN_HEADERS, "POST", "/v1/introspect",
                                 json={"token": web})  # fmt: skip
    assert status == 200


async def test_without_jwks_there_is_no_jwt_route(
    aiohttp_client: Any, redis_url: str | None, clients_file: Path
) -> None:
    plain = await aiohttp_client(
        create_app(Settings(redis_url=redis_url, clients_file=str(clients_file))),
        headers=ADMIN_HEADERS,
    )
    assert (await plain.post("/v1/jwt/revoke", json={"token": EC.sign()})).status == 404
    assert not await _active(plain, EC.sign())
