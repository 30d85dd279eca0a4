"""RFC 7662 introspection and RFC 7009 revocation, through HTTP."""

from __future__ import annotations

import asyncio

import pytest
from helpers import Client, introspect, issue

pytestmark = pytest.mark.parametrize("backend", ["standalone"], indirect=True)


async def test_active_token_in_rfc_7662_shape(client: Client) -> None:
    body = await issue(client, "alice", "web", scopes=["email", "profile"], type="Bearer")
    response = await client.post("/oauth2/introspect", data={"token": body["token"]})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "active": True,
        "scope": "email profile",
        "client_id": "web",
        "sub": "alice",
        "exp": body["expires_at"] // 1000,
        "iat": body["created_at"] // 1000,
        "token_type": "Bearer",
        "jti": body["id"],
    }


@pytest.mark.parametrize("value", ["unknown", "tks_forged", "x" * 5000])
async def test_inactive_is_exactly_active_false(client: Client, value: str) -> None:
    response = await client.post(
        "/oauth2/introspect", data={"token": value, "token_type_hint": "refresh_token"}
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.text() == '{"active":false}'


async def test_revoke_then_inactive_everywhere(client: Client) -> None:
    body = await issue(client)
    response = await client.post(
        "/oauth2/revoke", data={"token": body["token"], "token_type_hint": "access_token"}
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await introspect(client, body["token"]) == {"active": False}
    again = await client.post("/oauth2/revoke", data={"token": body["token"]})
    assert again.status == 200  # RFC 7009: unknown tokens are not an error


async def test_wrong_hint_never_prevents_revocation(client: Client) -> None:
    body = await issue(client)
    await client.post("/oauth2/revoke", data={"token": body["token"], "token_type_hint": "x"})
    assert await introspect(client, body["token"]) == {"active": False}


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
async def test_errors_are_rfc_6749_shaped(client: Client, path: str) -> None:
    missing = await client.post(path, data={"token_type_hint": "access_token"})
    assert missing.status == 400
    assert await missing.json() == {
        "error": "invalid_request",
        "error_description": "the token parameter is required",
    }
    as_json = await client.post(path, json={"token": "t"})
    assert as_json.status == 400
    assert (await as_json.json())["error"] == "invalid_request"
    wrong_method = await client.get(path)
    assert wrong_method.status == 405
    assert set(await wrong_method.json()) == {"error", "error_description"}


async def test_expired_token_is_inactive(client: Client) -> None:
    body = await issue(client, ttl=1)
    await asyncio.sleep(1.1)
    response = await client.post("/oauth2/introspect", data={"token": body["token"]})
    assert await response.json() == {"active": False}
