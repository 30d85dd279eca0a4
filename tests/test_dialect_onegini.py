"""The Onegini/OneWelcome-style access-token API."""

from __future__ import annotations

import asyncio

import pytest
from helpers import Client, introspect, issue

pytestmark = pytest.mark.parametrize("backend", ["standalone"], indirect=True)
BASE = "/oauth/api/v1/users"


async def test_list_in_seed_shape_with_headers(client: Client) -> None:
    ipad = await issue(
        client, "u1", "app-x", client_name="Client X", device_name="my iPad",
        scopes=["email", "profile"],
    )  # fmt: skip
    finger = await issue(client, "u1", "app-y", client_name="Client Y", type="FINGER_PRINT",
                         scopes=["email"])  # fmt: skip
    response = await client.get(f"{BASE}/u1/tokens")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert await response.json() == {
        "tokens": [
            {"id": finger["id"], "client_name": "Client Y", "created_at": finger["created_at"],
             "scopes": ["email"], "type": "FINGER_PRINT"},
            {"id": ipad["id"], "client_name": "Client X", "device_name": "my iPad",
             "created_at": ipad["created_at"], "scopes": ["email", "profile"],
             "type": "DEFAULT"},
        ]
    }  # fmt: skip


async def test_no_tokens_is_404_never_an_empty_list(client: Client) -> None:
    for user in ["nobody", "u-with-expired"]:
        if user == "u-with-expired":
            await issue(client, user, "app", ttl=1)
            await asyncio.sleep(1.1)
        response = await client.get(f"{BASE}/{user}/tokens")
        assert response.status == 404
        assert await response.json() == {"error": "No tokens found"}


async def test_delete_is_204_always_and_only_revokes_own_tokens(client: Client) -> None:
    mine = await issue(client, "u1", "app")
    theirs = await issue(client, "u2", "app")
    wrong_user = await client.delete(f"{BASE}/u1/tokens/{theirs['id']}")
    assert wrong_user.status == 204
    assert (await introspect(client, theirs["token"]))["active"] is True
    for _ in range(2):  # repeated delete
        response = await client.delete(f"{BASE}/u1/tokens/{mine['id']}")
        assert response.status == 204
        assert await response.read() == b""
    assert await introspect(client, mine["token"]) == {"active": False}
    for path in [f"{BASE}/nobody/tokens/{mine['id']}", f"{BASE}/u1/tokens/not-an-id"]:
        assert (await client.delete(path)).status == 204
