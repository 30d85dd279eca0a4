"""FusionAuth's /api/jwt/refresh, as its official clients send requests."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from helpers import Client, introspect, issue

pytestmark = pytest.mark.parametrize("backend", ["standalone"], indirect=True)


async def test_list_newest_first_in_refresh_token_shape(client: Client) -> None:
    first = await issue(client, "u1", "app1")
    second = await issue(
        client, "u1", "app2", scopes=["offline_access"], device_name="Pixel",
        metadata={"device": {"type": "MOBILE", "lastAccessedAddress": "10.0.0.1"},
                  "data": {"k": "v"}},
    )  # fmt: skip
    response = await client.get("/api/jwt/refresh?userId=u1")
    assert response.status == 200
    tokens = (await response.json())["refreshTokens"]
    assert [t["id"] for t in tokens] == [second["id"], first["id"]]
    assert tokens[0] == {
        "id": second["id"],
        "userId": "u1",
        "applicationId": "app2",
        "insertInstant": second["created_at"],
        "startInstant": second["created_at"],
        "metaData": {
            "device": {"name": "Pixel", "type": "MOBILE", "lastAccessedAddress": "10.0.0.1"},
            "scopes": ["offline_access"],
        },
        "data": {"k": "v"},
    }
    assert all("token" not in t for t in tokens)


async def test_get_by_id_and_404(client: Client) -> None:
    body = await issue(client, "u1", "app1")
    found = await client.get(f"/api/jwt/refresh/{body['id']}")
    assert (await found.json())["refreshToken"]["id"] == body["id"]
    await client.delete(f"/api/jwt/refresh/{body['id']}")
    for token_id in [body["id"], "not-a-uuid"]:
        gone = await client.get(f"/api/jwt/refresh/{token_id}")
        assert gone.status == 404
        assert set(await gone.json()) == {"fieldErrors", "generalErrors"}


async def test_delete_by_id_then_404(client: Client) -> None:
    body = await issue(client, "u1", "app1")
    first = await client.delete(f"/api/jwt/refresh/{body['id']}")
    assert first.status == 200
    assert await first.read() == b""
    assert (await client.delete(f"/api/jwt/refresh/{body['id']}")).status == 404


async def _delete(client: Client, how: str, fields: dict[str, Any]) -> Any:
    if how == "query":
        return await client.delete("/api/jwt/refresh", params=fields)
    if how == "json":
        return await client.delete(
            "/api/jwt/refresh", data=orjson.dumps(fields),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
    return await client.delete("/api/jwt/refresh", data=fields)  # form


@pytest.mark.parametrize("how", ["query", "json", "form"])
async def test_delete_by_token_value(client: Client, how: str) -> None:
    body = await issue(client, "u1", "app1")
    other = await issue(client, "u1", "app1")
    response = await _delete(client, how, {"token": body["token"]})
    assert response.status == 200
    assert await response.read() == b""
    assert await introspect(client, body["token"]) == {"active": False}
    assert (await introspect(client, other["token"]))["active"] is True


@pytest.mark.parametrize("how", ["query", "json"])
async def test_delete_by_user_app_and_both(client: Client, how: str) -> None:
    u1_a = await issue(client, "u1", "a")
    u1_b = await issue(client, "u1", "b")
    u2_a = await issue(client, "u2", "a")
    u2_b = await issue(client, "u2", "b")
    await _delete(client, how, {"userId": "u1", "applicationId": "a"})
    assert await introspect(client, u1_a["token"]) == {"active": False}
    assert (await introspect(client, u1_b["token"]))["active"] is True
    await _delete(client, how, {"userId": "u1"})
    assert await introspect(client, u1_b["token"]) == {"active": False}
    await _delete(client, how, {"applicationId": "a"})
    assert await introspect(client, u2_a["token"]) == {"active": False}
    assert (await introspect(client, u2_b["token"]))["active"] is True


async def test_event_info_is_kept_with_the_revocation(client: Client, redis: Any) -> None:
    body = await issue(client, "u1", "app1")
    info = {"deviceName": "iPhone", "ipAddress": "10.1.2.3", "location": {"city": "Utrecht"}}
    await _delete(client, "json", {"userId": "u1", "eventInfo": info})
    events = await redis.xrange("ts:events")
    assert orjson.loads(events[-1][1][b"info"]) == info
    assert events[-1][1][b"ids"] == body["id"].encode()


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {},
        {"data": b"", "headers": {"Content-Type": "application/json"}},
        {"data": b"null", "headers": {"Content-Type": "application/json"}},
        {"data": b"{}", "headers": {"Content-Type": "application/json"}},
    ],
)
async def test_no_criteria_is_a_json_400(client: Client, kwargs: dict[str, Any]) -> None:
    response = await client.delete("/api/jwt/refresh", **kwargs)
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"fieldErrors", "generalErrors"}
    assert set(body["fieldErrors"]) == {"token", "userId", "applicationId"}


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/api/jwt/refresh", {"data": b"{bad", "headers": {"Content-Type": "application/json"}}),
        ("/api/jwt/refresh", {"data": b"[1]", "headers": {"Content-Type": "application/json"}}),
        ("/api/jwt/refresh", {"data": b'{"userId": 5}'}),
    ],
)
async def test_every_400_is_json(client: Client, path: str, kwargs: dict[str, Any]) -> None:
    response = await client.delete(path, **kwargs)
    assert response.status == 400
    assert set(await response.json()) == {"fieldErrors", "generalErrors"}


async def test_list_without_user_is_a_json_400(client: Client) -> None:
    response = await client.get("/api/jwt/refresh")
    assert response.status == 400
    assert "userId" in (await response.json())["fieldErrors"]
