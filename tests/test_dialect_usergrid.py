"""Apache Usergrid's revoketoken(s), as its SDKs call them."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Client, introspect, issue

pytestmark = pytest.mark.parametrize("backend", ["standalone"], indirect=True)
BODIES: list[dict[str, Any]] = [{}, {"data": b"{}"}, {"data": b"null"}]


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("body", BODIES)
async def test_revoketokens_for_one_app(client: Client, method: str, body: dict[str, Any]) -> None:
    web = await issue(client, "someUser", "your-app")
    other = await issue(client, "someUser", "other-app")
    response = await client.request(
        method, "/your-org/your-app/users/someUser/revoketokens", **body
    )
    assert response.status == 200
    answer = await response.json(content_type=None)
    assert answer["action"] == "revoked user tokens"
    assert isinstance(answer["timestamp"], int)
    assert isinstance(answer["duration"], int)
    assert await introspect(client, web["token"]) == {"active": False}
    assert (await introspect(client, other["token"]))["active"] is True


async def test_management_revoketokens_everywhere(client: Client) -> None:
    a = await issue(client, "admin", "app-a")
    b = await issue(client, "admin", "app-b")
    response = await client.put("/management/users/admin/revoketokens")
    assert response.status == 200
    for body in (a, b):
        assert await introspect(client, body["token"]) == {"active": False}


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_revoketoken_one(client: Client, method: str) -> None:
    keep = await issue(client, "someUser", "your-app")
    body = await issue(client, "someUser", "your-app")
    response = await client.request(
        method, f"/your-org/your-app/users/someUser/revoketoken?token={body['token']}"
    )
    assert response.status == 200
    assert (await response.json())["action"] == "revoked user token"
    assert await introspect(client, body["token"]) == {"active": False}
    assert (await introspect(client, keep["token"]))["active"] is True


async def test_revoketoken_of_another_user_or_app_is_a_bad_token(client: Client) -> None:
    body = await issue(client, "someUser", "your-app")
    for path in [
        "/org/your-app/users/otherUser/revoketoken",
        "/org/other-app/users/someUser/revoketoken",
        "/management/users/otherUser/revoketoken",
    ]:
        response = await client.put(f"{path}?token={body['token']}")
        assert response.status == 400
        assert (await response.json())["error"] == "auth_bad_access_token"
    assert (await introspect(client, body["token"]))["active"] is True


@pytest.mark.parametrize(
    ("query", "error"),
    [("", "illegal_argument"), ("?token=", "illegal_argument"),
     ("?token=garbage", "auth_bad_access_token")],
)  # fmt: skip
async def test_errors_are_usergrid_shaped(client: Client, query: str, error: str) -> None:
    response = await client.put(f"/org/app/users/u/revoketoken{query}")
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"error", "error_description", "timestamp", "duration"}
    assert body["error"] == error


async def test_jsonp_callback(client: Client) -> None:
    await issue(client, "u", "app")
    response = await client.put("/org/app/users/u/revoketokens?callback=handle_it")
    assert response.status == 200
    assert response.content_type == "application/javascript"
    text = await response.text()
    assert text.startswith('handle_it({"action":"revoked user tokens"')
    assert text.endswith("});")
    evil = await client.put("/org/app/users/u/revoketokens?callback=alert(1)//")
    assert evil.status == 400
    assert evil.content_type == "application/json"
