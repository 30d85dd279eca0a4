"""The official or standard client libraries of the systems we are compatible with, unchanged,
pointed at tokenstore: FusionAuth's Python client and Authlib's RFC 7662 / 7009 client.

They are synchronous (requests), so they run in a thread against the live test server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from authlib.integrations.requests_client import OAuth2Session
from fusionauth.fusionauth_client import FusionAuthClient
from helpers import (
    ADMIN_ID,
    ADMIN_SECRET,
    Client,
    client_entry,
    introspect,
    issue,
    write_clients,
)

pytestmark = pytest.mark.parametrize("backend", ["standalone"], indirect=True)
T = TypeVar("T")
# A secret with characters RFC 6749 2.3.1 form-encodes inside HTTP Basic, as Authlib does.
RS_ID, RS_SECRET = "resource-server", "tkc_rs+secret/with:odd=chars"


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    return write_clients(
        tmp_path / "clients.json",
        client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"]),
        client_entry(RS_ID, RS_SECRET, ["introspect", "revoke"], ["*"]),
    )


async def off_loop(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


def _fusionauth(client: Client, api_key: str = ADMIN_SECRET) -> FusionAuthClient:
    return FusionAuthClient(api_key, str(client.make_url("")).rstrip("/"))


async def test_fusionauth_client_lists_and_retrieves(client: Client) -> None:
    first = await issue(client, "user-1", "app-1", device_name="Pixel")
    second = await issue(client, "user-1", "app-2", scopes=["offline_access"])
    fa = _fusionauth(client)
    listed = await off_loop(lambda: fa.retrieve_refresh_tokens("user-1"))
    assert listed.was_successful()
    tokens = listed.success_response["refreshTokens"]
    assert [t["id"] for t in tokens] == [second["id"], first["id"]]
    one = await off_loop(lambda: fa.retrieve_refresh_token_by_id(first["id"]))
    assert one.was_successful()
    assert one.success_response["refreshToken"]["metaData"]["device"]["name"] == "Pixel"
    other_id = first["id"][:-1] + ("1" if first["id"].endswith("0") else "0")
    missing = await off_loop(lambda: fa.retrieve_refresh_token_by_id(other_id))
    assert missing.status == 404
    denied = await off_loop(lambda: _fusionauth(client, "wrong-key").retrieve_refresh_tokens("u"))
    assert denied.status == 401


async def test_fusionauth_client_revokes_every_way(client: Client) -> None:
    tokens = {name: await issue(client, user, app) for name, user, app in [
        ("by_token", "u1", "a"), ("by_id", "u1", "a"), ("user_app", "u2", "a"),
        ("user", "u3", "b"), ("app", "u4", "c"), ("request", "u5", "d"),
    ]}  # fmt: skip
    fa = _fusionauth(client)
    calls: list[Callable[[], Any]] = [
        lambda: fa.revoke_refresh_token_by_token(tokens["by_token"]["token"]),
        lambda: fa.revoke_refresh_token_by_id(tokens["by_id"]["id"]),
        lambda: fa.revoke_refresh_tokens_by_user_id_for_application("u2", "a"),
        lambda: fa.revoke_refresh_tokens_by_user_id("u3"),
        lambda: fa.revoke_refresh_tokens_by_application_id("c"),
        lambda: fa.revoke_refresh_tokens_with_request(
            {"userId": "u5", "eventInfo": {"deviceName": "iPhone", "ipAddress": "10.0.0.5"}}
        ),
    ]
    for call in calls:
        response = await off_loop(call)
        assert response.was_successful(), (response.status, response.error_response)
    for body in tokens.values():
        assert await introspect(client, body["token"]) == {"active": False}


async def test_fusionauth_client_parses_our_400(client: Client) -> None:
    response = await off_loop(lambda: _fusionauth(client).revoke_refresh_token())
    assert response.status == 400
    assert set(response.error_response) == {"fieldErrors", "generalErrors"}


async def test_authlib_introspects_and_revokes(client: Client) -> None:
    body = await issue(client, "alice", "web", scopes=["email", "profile"])
    session = OAuth2Session(RS_ID, RS_SECRET)
    base = str(client.make_url("")).rstrip("/")

    introspect_url, revoke_url = f"{base}/oauth2/introspect", f"{base}/oauth2/revoke"
    answer = await off_loop(lambda: session.introspect_token(introspect_url, token=body["token"]))
    assert answer.status_code == 200
    assert answer.json()["active"] is True
    assert answer.json()["scope"] == "email profile"
    revoked = await off_loop(
        lambda: session.revoke_token(revoke_url, token=body["token"], token_type_hint="refresh")
    )
    assert revoked.status_code == 200
    again = await off_loop(lambda: session.introspect_token(introspect_url, token=body["token"]))
    assert again.json() == {"active": False}
    wrong = OAuth2Session(RS_ID, "not-the-secret")
    denied = await off_loop(lambda: wrong.introspect_token(introspect_url, token=body["token"]))
    assert denied.status_code == 401
    assert denied.json()["error"] == "invalid_client"
