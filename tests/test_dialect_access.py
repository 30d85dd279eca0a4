"""Each dialect with the credentials its real clients send, and what scoping does there."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    ADMIN_ID,
    ADMIN_SECRET,
    Client,
    bare,
    basic,
    bearer,
    call_as,
    client_entry,
    introspect,
    issue,
    write_clients,
)  # fmt: skip

pytestmark = pytest.mark.parametrize("backend", ["standalone"], indirect=True)
GATEWAY = "tkc_gateway-introspect-only"
WEB = "tkc_web-only-introspect-read-revoke"
READER = "tkc_reader-read-only"


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    return write_clients(
        tmp_path / "clients.json",
        client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"]),
        client_entry("gateway", GATEWAY, ["introspect"], ["*"]),
        client_entry("web", WEB, ["introspect", "read", "revoke"], ["web"]),
        client_entry("reader", READER, ["read"], ["*"]),
    )


async def test_oauth_with_basic_client_credentials(client: Client) -> None:
    web = await issue(client, "alice", "web")
    mobile = await issue(client, "alice", "mobile")
    form = {"data": {"token": web["token"]}}
    status, headers, body = await call_as(client, None, "POST", "/oauth2/introspect", **form)
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic")
    status, _, body = await call_as(client, basic("gateway", "wrong"), "POST",
                                    "/oauth2/introspect", **form)  # fmt: skip
    assert (status, body["error"]) == (401, "invalid_client")
    status, _, body = await call_as(client, basic("gateway", GATEWAY), "POST",
                                    "/oauth2/introspect", **form)  # fmt: skip
    assert (status, body["active"], body["sub"]) == (200, True, "alice")
    status, _, body = await call_as(client, basic("reader", READER), "POST",
                                    "/oauth2/introspect", **form)  # fmt: skip
    assert (status, body["error"]) == (403, "unauthorized_client")
    status, _, body = await call_as(client, basic("web", WEB), "POST", "/oauth2/introspect",
                                    data={"token": mobile["token"]})  # fmt: skip
    assert (status, body) == (200, {"active": False})  # another app's token: not visible
    status, _, _ = await call_as(client, basic("web", WEB), "POST", "/oauth2/revoke",
                                 data={"token": mobile["token"]})  # fmt: skip
    assert status == 200
    assert (await introspect(client, mobile["token"]))["active"] is True  # untouched


async def test_fusionauth_with_a_bare_api_key(client: Client) -> None:
    web = await issue(client, "u1", "web")
    await issue(client, "u1", "mobile")
    status, _, body = await call_as(client, None, "GET", "/api/jwt/refresh?userId=u1")
    assert status == 401
    assert set(body) == {"fieldErrors", "generalErrors"}
    status, _, body = await call_as(client, bare(WEB), "GET", "/api/jwt/refresh?userId=u1")
    assert status == 200
    assert [t["id"] for t in body["refreshTokens"]] == [web["id"]]  # only its app's
    status, _, body = await call_as(
        client, bare(WEB), "DELETE", "/api/jwt/refresh?applicationId=web"
    )
    assert status == 403  # a whole app needs admin
    assert set(body) == {"fieldErrors", "generalErrors"}
    assert (await introspect(client, web["token"]))["active"] is True
    status, _, _ = await call_as(client, bare(ADMIN_SECRET), "DELETE",
                                 "/api/jwt/refresh?applicationId=web")  # fmt: skip
    assert status == 200
    assert await introspect(client, web["token"]) == {"active": False}


async def test_usergrid_logout_with_the_users_own_token(client: Client) -> None:
    mine = await issue(client, "someUser", "your-app")
    other_device = await issue(client, "someUser", "your-app")
    theirs = await issue(client, "otherUser", "your-app")
    status, _, body = await call_as(
        client, None, "PUT", "/org/your-app/users/someUser/revoketokens"
    )
    assert status == 401
    assert set(body) == {"error", "error_description", "timestamp", "duration"}
    status, _, body = await call_as(client, bearer(mine["token"]), "PUT",
                                    "/org/your-app/users/otherUser/revoketokens")  # fmt: skip
    assert status == 403
    assert (await introspect(client, theirs["token"]))["active"] is True
    status, _, body = await call_as(
        client, bearer(mine["token"]), "PUT",
        f"/org/your-app/users/someUser/revoketoken?token={other_device['token']}",
    )  # fmt: skip
    assert (status, body["action"]) == (200, "revoked user token")
    status, _, body = await call_as(client, bearer(mine["token"]), "PUT",
                                    "/org/your-app/users/someUser/revoketokens")  # fmt: skip
    assert (status, body["action"]) == (200, "revoked user tokens")
    for token in (mine, other_device):
        assert await introspect(client, token["token"]) == {"active": False}


async def test_onegini_with_basic_client_credentials(client: Client) -> None:
    web = await issue(client, "u1", "web")
    mobile = await issue(client, "u1", "mobile")
    path = "/oauth/api/v1/users/u1/tokens"
    status, _, body = await call_as(client, None, "GET", path)
    assert status == 401
    assert set(body) == {"error"}
    status, _, body = await call_as(client, basic("web", WEB), "GET", path)
    assert [t["id"] for t in body["tokens"]] == [web["id"]]
    status, _, body = await call_as(client, basic("reader", READER), "DELETE",
                                    f"{path}/{web['id']}")  # fmt: skip
    assert status == 403
    async with client.session.delete(
        client.make_url(f"{path}/{mobile['id']}"), headers=basic("web", WEB)
    ) as response:
        assert response.status == 204  # always 204; a foreign app's token is left alone
    assert (await introspect(client, mobile["token"]))["active"] is True
