"""Credentials, self-service, scoping and the audit list through HTTP, on every backend (the
Lua scripts take users and sets of apps); tests/test_access_matrix.py covers every route."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from helpers import (
    ADMIN_HEADERS,
    ADMIN_ID,
    ADMIN_SECRET,
    Client,
    all_keys,
    basic,
    bearer,
    call_as,
    client_entry,
    introspect,
    issue,
    snapshot,
    write_clients,
)

from service.api import access
from service.app import create_app
from service.event_log import USER_EVENTS_KEPT
from service.redis_client import AnyRedis
from service.settings import Settings

SCOPED = "tkc_scoped-to-web-and-mobile"


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    return write_clients(
        tmp_path / "clients.json",
        client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"]),
        client_entry(
            "web-mobile", SCOPED, ["introspect", "read", "revoke", "issue"], ["web", "mobile"]
        ),
    )


async def _ids(client: Client, path: str, headers: dict[str, str]) -> list[str]:
    status, _, body = await call_as(client, headers, "GET", path)
    assert status == 200, body
    return [t["id"] for t in body["tokens"]]


# --- self-service -------------------------------------------------------------------------


async def test_a_user_logs_out_everywhere_but_here(client: Client) -> None:
    here = await issue(client, "alice", "web")
    there = [await issue(client, "alice", "mobile"), await issue(client, "alice", "web")]
    bob = await issue(client, "bob", "web")
    me = bearer(here["token"])
    listed = await _ids(client, "/v1/users/alice/tokens", me)
    assert sorted(listed) == sorted([here["id"]] + [t["id"] for t in there])
    status, _, body = await call_as(
        client, me, "DELETE", f"/v1/users/alice/tokens?except={here['id']}"
    )
    assert status == 200
    assert sorted(body["revoked"]) == sorted(t["id"] for t in there)
    assert (await introspect(client, here["token"]))["active"] is True
    assert (await introspect(client, bob["token"]))["active"] is True


async def test_a_user_revokes_their_own_token_which_then_stops_working(client: Client) -> None:
    token = await issue(client, "alice", "web")
    status, _, body = await call_as(client, bearer(token["token"]), "POST", "/v1/revoke",
                                    json={"token": token["token"]})  # fmt: skip
    assert (status, body) == (200, {"revoked": [token["id"]]})
    status, headers, body = await call_as(
        client, bearer(token["token"]), "GET", "/v1/users/alice/tokens"
    )
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert token["token"] not in str(body)


async def test_self_service_is_recorded_as_self_with_the_token_used(
    client: Client, redis: AnyRedis
) -> None:
    here = await issue(client, "alice", "web")
    other = await issue(client, "alice", "web")
    await call_as(client, bearer(here["token"]), "DELETE", f"/v1/tokens/{other['id']}")
    [(_, fields)] = await cast(Any, redis).xrange("ts:events")
    assert fields[b"actor"] == b"self" and fields[b"via"] == here["id"].encode()
    events = (await (await client.get("/v1/users/alice/events")).json())["events"]
    assert [(e["actor"], e["via"], e["ids"]) for e in events] == [
        ("self", here["id"], [other["id"]])
    ]


# --- scoping ------------------------------------------------------------------------------


async def test_bulk_revocation_touches_only_the_clients_apps(client: Client) -> None:
    web_t, mobile_t = await issue(client, "alice", "web"), await issue(client, "alice", "mobile")
    other_t = await issue(client, "alice", "other")
    scoped = bearer(SCOPED)
    status, _, body = await call_as(client, scoped, "DELETE", "/v1/users/alice/tokens?app_id=other")
    assert (status, body) == (200, {"revoked": []})
    assert sorted(await _ids(client, "/v1/users/alice/tokens", scoped)) == sorted(
        [web_t["id"], mobile_t["id"]]
    )
    status, _, body = await call_as(client, scoped, "DELETE", "/v1/users/alice/tokens")
    assert sorted(body["revoked"]) == sorted([web_t["id"], mobile_t["id"]])
    assert (await introspect(client, other_t["token"]))["active"] is True
    assert await _ids(client, "/v1/users/alice/tokens", ADMIN_HEADERS) == [other_t["id"]]


async def test_foreign_tokens_look_absent_and_foreign_apps_are_refused(
    client: Client, redis: AnyRedis
) -> None:
    foreign = await issue(client, "alice", "other")
    scoped = bearer(SCOPED)
    before = await snapshot(redis)
    calls: list[tuple[str, str, Any, int, Any]] = [
        ("POST", "/v1/introspect", {"token": foreign["token"]}, 200, {"active": False}),
        ("GET", f"/v1/tokens/{foreign['id']}", None, 404, None),
        ("DELETE", f"/v1/tokens/{foreign['id']}", None, 200, {"revoked": []}),
        ("POST", "/v1/revoke", {"token": foreign["token"]}, 200, {"revoked": []}),
        ("GET", "/v1/apps/other/tokens", None, 200, {"tokens": [], "next_cursor": None}),
        ("POST", "/v1/tokens", {"user_id": "alice", "app_id": "other"}, 403, None),
    ]
    for method, path, body, status, answer in calls:
        got_status, _, got = await call_as(client, scoped, method, path, json=body)
        assert got_status == status, (method, path, got)
        if answer is not None:
            assert got == answer, (method, path)
    assert await snapshot(redis) == before


async def test_issuing_in_scope_works(client: Client) -> None:
    status, _, body = await call_as(client, bearer(SCOPED), "POST", "/v1/tokens",
                                    json={"user_id": "u", "app_id": "mobile"})  # fmt: skip
    assert status == 201 and body["app_id"] == "mobile"


# --- the per-user audit list --------------------------------------------------------------


async def test_user_events_list_who_revoked_what(client: Client, redis: AnyRedis) -> None:
    first = await issue(client, "alice", "web")
    await issue(client, "alice", "mobile")
    await client.delete(f"/v1/tokens/{first['id']}")
    await call_as(client, bearer(SCOPED), "DELETE", "/v1/users/alice/tokens")
    await client.delete("/v1/apps/web/tokens")  # app-wide: in the stream, not in user lists
    body = await (await client.get("/v1/users/alice/events")).json()
    summary = [(e["kind"], e["actor"], e["app_id"], len(e["ids"])) for e in body["events"]]
    assert summary == [("user", "web-mobile", "mobile", 1), ("token", ADMIN_ID, "web", 1)]
    assert body["events"][1]["ids"] == [first["id"]]
    assert body["events"][1]["user_id"] == "alice" and isinstance(body["events"][1]["at"], int)
    scoped = await call_as(client, bearer(SCOPED), "GET", "/v1/users/alice/events")
    assert len(scoped[2]["events"]) == 2
    assert (await (await client.get("/v1/users/bob/events")).json()) == {"events": []}
    [key] = [k for k in await all_keys(redis) if b"e:{" in k]
    assert 0 < await cast(Any, redis).pttl(key) <= Settings().max_ttl * 1000


@pytest.mark.parametrize("backend", ["standalone"])
async def test_user_events_are_capped(client: Client, redis: AnyRedis) -> None:
    tokens = [await issue(client, "alice", "web") for _ in range(USER_EVENTS_KEPT + 5)]
    await asyncio.gather(*(client.delete(f"/v1/tokens/{t['id']}") for t in tokens))
    events = (await (await client.get("/v1/users/alice/events")).json())["events"]
    assert len(events) == USER_EVENTS_KEPT


# --- the HTTP side of authentication (one backend) ----------------------------------------


@pytest.mark.parametrize("backend", ["standalone"])
async def test_401_challenges_basic_and_bearer_in_the_dialects_shape(client: Client) -> None:
    status, headers, body = await call_as(client, None, "POST", "/v1/introspect",
                                          json={"token": "x"})  # fmt: skip
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="tokenstore", Bearer realm="tokenstore"'
    assert body["error"] == "unauthorized" and set(body) == {"error", "message"}
    status, _, body = await call_as(client, basic(ADMIN_ID, "nope"), "GET", "/v1/users/a/tokens")
    assert (status, body["error"]) == (401, "unauthorized")


@pytest.mark.parametrize("backend", ["standalone"])
async def test_two_authorization_headers_are_refused(client: Client) -> None:
    both = [("Authorization", f"Bearer {ADMIN_SECRET}"), ("Authorization", "Bearer other")]
    status, _, _ = await call_as(client, both, "GET", "/v1/users/a/tokens")
    assert status == 401


@pytest.mark.parametrize("backend", ["standalone"])
async def test_probes_and_the_document_stay_open(client: Client) -> None:
    for path in ["/healthz", "/readyz", "/openapi.json"]:
        status, _, _ = await call_as(client, None, "GET", path)
        assert status == 200, path
    status, _, body = await call_as(client, None, "GET", "/nowhere")
    assert (status, body["error"]) == (404, "not_found")


@pytest.mark.parametrize("backend", ["standalone"])
async def test_a_route_without_a_rule_stops_the_app(settings: Settings) -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response()

    app = create_app(settings)
    app.router.add_get("/v1/forgotten", forgotten, name="v1.forgotten")
    with pytest.raises(RuntimeError, match=r"\(name 'v1.forgotten'\) has no access rule"):
        access.check_rules(app)


async def test_quick_start_admin_works(
    aiohttp_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(Settings())  # embedded store, no clients file
    text = capsys.readouterr().err
    secret = next(line.split()[-1] for line in text.splitlines() if "secret:" in line)
    client = await aiohttp_client(app, headers=bearer(secret))
    body = await issue(client, "alice", "web")
    assert (await introspect(client, body["token"]))["active"] is True
