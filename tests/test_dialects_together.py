"""A token revoked through any dialect is revoked for all of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import Client, issue

pytestmark = pytest.mark.parametrize("backend", ["standalone", "cluster"], indirect=True)

Revoke = Callable[[Client, dict[str, Any]], Awaitable[Any]]
REVOKERS: dict[str, Revoke] = {
    "native": lambda c, t: c.post("/v1/revoke", json={"token": t["token"]}),
    "native_id": lambda c, t: c.delete(f"/v1/tokens/{t['id']}"),
    "oauth": lambda c, t: c.post("/oauth2/revoke", data={"token": t["token"]}),
    "fusionauth": lambda c, t: c.delete("/api/jwt/refresh", params={"token": t["token"]}),
    "fusionauth_id": lambda c, t: c.delete(f"/api/jwt/refresh/{t['id']}"),
    "usergrid": lambda c, t: c.put(f"/org/app/users/alice/revoketoken?token={t['token']}"),
    "onegini": lambda c, t: c.delete(f"/oauth/api/v1/users/alice/tokens/{t['id']}"),
}


async def _visible_everywhere(client: Client, token: dict[str, Any]) -> list[bool]:
    native = await (await client.post("/v1/introspect", json={"token": token["token"]})).json()
    oauth = await (await client.post("/oauth2/introspect", data={"token": token["token"]})).json()
    fusion = await client.get(f"/api/jwt/refresh/{token['id']}")
    onegini = await (await client.get("/oauth/api/v1/users/alice/tokens")).json()
    listed = token["id"] in [t["id"] for t in onegini.get("tokens", [])]
    return [native["active"], oauth["active"], fusion.status == 200, listed]


@pytest.mark.parametrize("dialect", sorted(REVOKERS))
async def test_revoked_through_one_dialect_revoked_for_all(client: Client, dialect: str) -> None:
    token = await issue(client, "alice", "app")
    assert await _visible_everywhere(client, token) == [True] * 4
    response = await REVOKERS[dialect](client, token)
    assert response.status in {200, 204}
    assert await _visible_everywhere(client, token) == [False] * 4
