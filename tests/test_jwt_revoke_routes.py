"""A JWT revoked by value where a token is expected: ``POST /v1/revoke``, RFC 7009's
``POST /oauth2/revoke`` (and FusionAuth's and Usergrid's revoke by value), each with its own
answers, all denying the JWT as ``POST /v1/jwt/revoke`` does. On every backend."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ADMIN_HEADERS, add_clients, basic, bearer, call_as, client_entry, introspect
from jwt_keys import AUDIENCE, ISSUER, SigningKey, write_jwks

from service import sse
from service.app import create_app
from service.settings import Settings

Client = TestClient[Any, Any]
KEY = SigningKey.new("ES256", "ec")
SCOPED_ID, SCOPED_SECRET = "web-admin", "tkc_web-admin-secret-0123456789"


@pytest.fixture
def settings(redis_url: str | None, clients_file: Path, tmp_path: Path) -> Settings:
    add_clients(clients_file, client_entry(SCOPED_ID, SCOPED_SECRET, ["revoke"], ["web"]))
    return Settings(
        redis_url=redis_url,
        clients_file=str(clients_file),
        jwt_jwks_file=str(write_jwks(tmp_path / "jwks.json", KEY)),
        jwt_issuers=(ISSUER,),
        jwt_audience=AUDIENCE,
    )


async def _active(client: Client, token: str) -> bool:
    answer = await introspect(client, token)
    oauth = await (await client.post("/oauth2/introspect", data={"token": token})).json()
    assert answer["active"] == oauth["active"]
    return bool(answer["active"])


async def _jwt_events(client: Client, user_id: str = "alice") -> list[dict[str, Any]]:
    events = (await (await client.get(f"/v1/users/{user_id}/events")).json())["events"]
    return [e for e in events if e["kind"] == "jwt"]


async def _oauth_revoke(client: Client, token: str, **extra: str) -> int:
    response = await client.post("/oauth2/revoke", data={"token": token, **extra})
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.read() == b""
    return response.status


async def test_v1_revoke_denies_a_jwt_until_its_exp(client: Client) -> None:
    exp = int(time.time()) + 300
    token, other = KEY.sign(jti="v1-jti", exp=exp), KEY.sign(jti="other")
    response = await client.post("/v1/revoke", json={"token": token})
    assert (response.status, await response.json()) == (200, {"revoked": ["v1-jti"]})
    assert not await _active(client, token)
    assert await _active(client, other)
    [event] = await _jwt_events(client)
    assert (event["ids"], event["app_id"], event["actor"]) == (["v1-jti"], "web", "test-admin")
    assert (event["issuer"], event["expires_at"]) == (ISSUER, exp * 1000)


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
async def test_oauth_revoke_denies_a_jwt_whatever_the_hint(
    client: Client, hint: str | None
) -> None:
    exp = int(time.time()) + 300
    token = KEY.sign(jti="oauth-jti", exp=exp)
    feed = await client.get("/v1/events")
    messages = sse.parse(feed.content.readline)
    async with asyncio.timeout(5):
        assert (await anext(messages)).event == "ready"
    extra = {} if hint is None else {"token_type_hint": hint}
    assert await _oauth_revoke(client, token, **extra) == 200
    assert not await _active(client, token)
    async with asyncio.timeout(5):
        message = await anext(messages)
    feed.close()
    assert message.event == "jwt"
    assert json.loads(message.data or "") == {
        "kind": "jwt", "app_id": "web", "user_id": "alice", "ids": ["oauth-jti"],
        "issuer": ISSUER, "expires_at": exp * 1000, "at": json.loads(message.data or "")["at"],
    }  # fmt: skip
    [event] = await _jwt_events(client)
    assert event["ids"] == ["oauth-jti"]
    assert (event["issuer"], event["expires_at"]) == (ISSUER, exp * 1000)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 5},  # expired
        {"iss": "https://evil.test"},
        {"aud": "https://other.test"},
        {"jti": None},
    ],
    ids=["expired", "issuer", "audience", "no-jti"],
)
async def test_an_invalid_jwt_is_answered_as_an_unknown_token(
    client: Client, claims: dict[str, Any]
) -> None:
    token = KEY.sign(claims)
    forged = SigningKey.new("ES256", KEY.kid).sign()  # our kid, another key
    for value in (token, forged):
        response = await client.post("/v1/revoke", json={"token": value})
        assert (response.status, await response.json()) == (200, {"revoked": []})
        assert await _oauth_revoke(client, value) == 200
        refused = await client.post("/v1/jwt/revoke", json={"token": value})
        assert (refused.status, (await refused.json())["error"]) == (400, "invalid_token")
    assert await _jwt_events(client) == []


async def test_a_client_of_some_apps_revokes_only_their_jwts(client: Client) -> None:
    web, mobile = KEY.sign(jti="web-1"), KEY.sign(jti="mobile-1", azp="mobile")
    scoped_bearer, scoped_basic = bearer(SCOPED_SECRET), basic(SCOPED_ID, SCOPED_SECRET)
    status, _, body = await call_as(client, scoped_bearer, "POST", "/v1/revoke",
                                    json={"token": mobile})  # fmt: skip
    assert (status, body) == (200, {"revoked": []})
    status, _, _ = await call_as(client, scoped_basic, "POST", "/oauth2/revoke",
                                 data={"token": mobile})  # fmt: skip
    assert status == 200  # RFC 7009: as for a token of another app, nothing said, nothing done
    assert await _active(client, mobile)
    status, _, _ = await call_as(client, scoped_basic, "POST", "/oauth2/revoke",
                                 data={"token": web})  # fmt: skip
    assert status == 200
    assert not await _active(client, web)
    [event] = await _jwt_events(client)
    assert (event["ids"], event["actor"]) == (["web-1"], SCOPED_ID)


async def test_a_jwt_revokes_itself_and_not_another_user_s(client: Client) -> None:
    token, bob = KEY.sign(jti="self-1"), KEY.sign(jti="bob-1", sub="bob")
    status, _, body = await call_as(client, bearer(token), "POST", "/v1/revoke",
                                    json={"token": bob})  # fmt: skip
    assert (status, body) == (200, {"revoked": []})
    assert await _active(client, bob)
    status, _, body = await call_as(client, bearer(token), "POST", "/v1/revoke",
                                    json={"token": token})  # fmt: skip
    assert (status, body) == (200, {"revoked": ["self-1"]})
    assert not await _active(client, token)
    [event] = await _jwt_events(client)
    assert (event["actor"], event["via"]) == ("self", "self-1")


async def test_fusionauth_and_usergrid_revoke_a_jwt_by_value(client: Client) -> None:
    fusion, usergrid = KEY.sign(jti="fa-1"), KEY.sign(jti="ug-1")
    response = await client.delete("/api/jwt/refresh", params={"token": fusion})
    assert response.status == 200
    assert not await _active(client, fusion)
    other_app = await client.post("/org/mobile/users/alice/revoketoken", params={"token": usergrid})
    assert (other_app.status, (await other_app.json())["error"]) == (400, "auth_bad_access_token")
    assert await _active(client, usergrid)
    response = await client.post("/org/web/users/alice/revoketoken", params={"token": usergrid})
    assert response.status == 200
    assert not await _active(client, usergrid)
    assert sorted(e["ids"][0] for e in await _jwt_events(client)) == ["fa-1", "ug-1"]


async def test_a_jwt_shaped_value_of_an_unknown_key_is_revoked_as_a_registered_token(
    client: Client,
) -> None:
    value = SigningKey.new("ES256", "not-ours").sign()
    issued = await client.post(
        "/v1/tokens", json={"user_id": "alice", "app_id": "web", "token": value}
    )
    assert issued.status == 201
    token_id = (await issued.json())["id"]
    response = await client.post("/v1/revoke", json={"token": value})
    assert await response.json() == {"revoked": [token_id]}
    assert not await _active(client, value)
    assert await _jwt_events(client) == []


async def test_without_jwks_a_jwt_is_an_unknown_token(
    aiohttp_client: Any, redis_url: str | None, clients_file: Path
) -> None:
    plain: Client = await aiohttp_client(
        create_app(Settings(redis_url=redis_url, clients_file=str(clients_file))),
        headers=ADMIN_HEADERS,
    )
    response = await plain.post("/v1/revoke", json={"token": KEY.sign()})
    assert (response.status, await response.json()) == (200, {"revoked": []})
    assert await _oauth_revoke(plain, KEY.sign()) == 200
