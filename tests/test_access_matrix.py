"""Every route, for every kind of caller: the expected answer, with Redis unchanged unless the
call was allowed to change it, and no secret or token in any answer or log line.

The native API and the feed take API client credentials (a user's own token on self-service
routes only); forward auth (``authz.*``) takes none: the bearer token is the only credential,
and only a live user token passes.

One backend (standalone): the matrix is about who may call what; what differs per backend
(the scripts) is covered by test_access.py and test_native_api.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from helpers import (
    ADMIN_HEADERS,
    ADMIN_ID,
    ADMIN_SECRET,
    Client,
    bare,
    basic,
    bearer,
    client_entry,
    snapshot,
    write_clients,
)

from service import sse
from service.api.access import RULES
from service.api.authz import PROXIED_METHODS
from service.api.responses import STORE
from service.app import create_app
from service.clients import Permission
from service.identity import Identity
from service.redis_client import AnyRedis
from service.settings import Settings

OK, NONE = "ok", "none"  # allowed and done; allowed but out of scope (as if absent)
CALLERS = [
    "no_credentials", "wrong_basic", "wrong_bearer", "basic", "bearer", "bare",
    "lacking_permission", "scoped_to_app", "scoped_to_other_app", "own_token", "other_users_token",
]  # fmt: skip
MATRIX: dict[str, tuple[str | int, ...]] = {
    # route                   none  wrong wrong  basic bearer bare lack  app  other  own  other's
    "v1.issue":              (401, 401, 401, OK, OK, OK, 403, OK, 403,  401, 401),
    "v1.introspect":         (401, 401, 401, OK, OK, OK, 403, OK, NONE, 401, 401),
    "v1.get_token":          (401, 401, 401, OK, OK, OK, 403, OK, 404,  401, 401),
    "v1.revoke_by_id":       (401, 401, 401, OK, OK, OK, 403, OK, NONE, OK,  NONE),
    "v1.revoke_by_value":    (401, 401, 401, OK, OK, OK, 403, OK, NONE, OK,  NONE),
    "v1.list_user_tokens":   (401, 401, 401, OK, OK, OK, 403, OK, NONE, OK,  403),
    "v1.revoke_user_tokens": (401, 401, 401, OK, OK, OK, 403, OK, NONE, OK,  403),
    "v1.user_events":        (401, 401, 401, OK, OK, OK, 403, OK, NONE, 401, 401),
    "v1.list_app_tokens":    (401, 401, 401, OK, OK, OK, 403, OK, NONE, 401, 401),
    "v1.revoke_app_tokens":  (401, 401, 401, OK, OK, OK, 403, OK, 403,  401, 401),
    "v1.events":             (401, 401, 401, OK, OK, OK, 403, OK, NONE, 401, 401),
    "authz.check":           (401, 401, 401, 401, 401, 401, 401, 401, 401, OK, OK),
    # Rotation is open to the token's holder (no credentials, or that very token as Bearer).
    "v1.rotate":             (OK,  401, 401, OK, OK, OK, 403, OK, 400,  OK,  401),
    "v1.list_sessions":      (401, 401, 401, OK, OK, OK, 403, OK, NONE, OK,  403),
    "v1.revoke_session":     (401, 401, 401, OK, OK, OK, 403, OK, NONE, OK,  NONE),
}  # fmt: skip
# The Envoy form of forward auth (/v1/authz/{path}, one route per method): the same handler
# and rule as authz.check (checked below), so that row stands for them.
SAME_AS = {f"authz.check_{method.lower()}": "authz.check" for method in PROXIED_METHODS}
WRITES = {"v1.issue", "v1.revoke_by_id", "v1.revoke_by_value", "v1.revoke_user_tokens",
          "v1.revoke_app_tokens", "v1.rotate", "v1.revoke_session"}  # fmt: skip
NEEDS = {
    "v1.issue": Permission.ISSUE, "v1.introspect": Permission.INTROSPECT,
    "v1.revoke_by_id": Permission.REVOKE, "v1.revoke_by_value": Permission.REVOKE,
    "v1.revoke_user_tokens": Permission.REVOKE, "v1.revoke_app_tokens": Permission.ADMIN,
    "v1.events": Permission.INTROSPECT, "v1.rotate": Permission.ISSUE,
    "v1.revoke_session": Permission.REVOKE,
}  # fmt: skip
ABSENT = {
    "v1.introspect": {"active": False},
    "v1.revoke_by_id": {"revoked": []},
    "v1.revoke_by_value": {"revoked": []},
    "v1.list_user_tokens": {"tokens": []},
    "v1.revoke_user_tokens": {"revoked": []},
    "v1.user_events": {"events": []},
    "v1.list_app_tokens": {"tokens": [], "next_cursor": None},
    "v1.events": {"events": ["ready"]},  # the replay skips web's events
    "v1.list_sessions": {"sessions": []},
    "v1.revoke_session": {"revoked": []},
}
SECRET_OF = {p: f"tkc_lacking-{p.value}-secret" for p in Permission}
APP_SECRET, OTHER_APP_SECRET = "tkc_scoped-to-web-secret", "tkc_scoped-to-other-secret"
CELLS = [(route, caller) for route in MATRIX for caller in CALLERS]


@pytest.fixture
def backend() -> str:
    return "standalone"


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    lacking = [
        client_entry(f"lacking-{p.value}", SECRET_OF[p],
                     [q.value for q in Permission if q not in {p, Permission.ADMIN}], ["*"])
        for p in Permission
    ]  # fmt: skip
    return write_clients(
        tmp_path / "clients.json",
        client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"]),
        client_entry("web-admin", APP_SECRET, ["admin"], ["web"]),
        client_entry("other-admin", OTHER_APP_SECRET, ["admin"], ["other"]),
        *lacking,
    )


@pytest.fixture
async def anon(aiohttp_client: Any, settings: Settings) -> Client:
    """The app with no default credentials: each call brings its own."""
    client: Client = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
async def redis(anon: Client) -> AsyncIterator[AnyRedis]:
    yield await anon.app[STORE].client()


@dataclass(frozen=True)
class World:
    alice: dict[str, Any]  # the token every route acts on: alice's, in app "web"
    bob: dict[str, Any]  # another user's token, in the same app


@pytest.fixture
async def world(anon: Client) -> World:
    async def issued(user_id: str) -> dict[str, Any]:
        body = {"user_id": user_id, "app_id": "web"}
        response = await anon.post("/v1/tokens", json=body, headers=ADMIN_HEADERS)
        assert response.status == 201
        result: dict[str, Any] = await response.json()
        return result

    revoked = await issued("alice")  # so that alice has an event to list
    await anon.delete(f"/v1/tokens/{revoked['id']}", headers=ADMIN_HEADERS)
    return World(await issued("alice"), await issued("bob"))


def _request(route: str, w: World) -> tuple[str, str, Any]:
    token, token_id = w.alice["token"], w.alice["id"]
    return {
        "v1.issue": ("POST", "/v1/tokens", {"user_id": "alice", "app_id": "web"}),
        "v1.introspect": ("POST", "/v1/introspect", {"token": token}),
        "v1.get_token": ("GET", f"/v1/tokens/{token_id}", None),
        "v1.revoke_by_id": ("DELETE", f"/v1/tokens/{token_id}", None),
        "v1.revoke_by_value": ("POST", "/v1/revoke", {"token": token}),
        "v1.list_user_tokens": ("GET", "/v1/users/alice/tokens", None),
        "v1.revoke_user_tokens": ("DELETE", "/v1/users/alice/tokens", None),
        "v1.user_events": ("GET", "/v1/users/alice/events", None),
        "v1.list_app_tokens": ("GET", "/v1/apps/web/tokens", None),
        "v1.revoke_app_tokens": ("DELETE", "/v1/apps/web/tokens", None),
        # From the start of the stream: alice's revoked token (app "web") is replayed.
        "v1.events": ("GET", "/v1/events?last_event_id=0-0", None),
        "authz.check": ("GET", "/v1/authz", None),
        "v1.rotate": ("POST", "/v1/tokens/rotate", {"token": token}),
        "v1.list_sessions": ("GET", "/v1/users/alice/sessions", None),
        "v1.revoke_session": ("DELETE", f"/v1/sessions/{token_id}", None),
    }[route]


def _headers(caller: str, route: str, w: World) -> dict[str, str] | None:
    return {
        "no_credentials": None,
        "wrong_basic": basic(ADMIN_ID, "tkc_not-the-secret"),
        "wrong_bearer": bearer("tkc_not-the-secret"),
        "basic": basic(ADMIN_ID, ADMIN_SECRET),
        "bearer": bearer(ADMIN_SECRET),
        "bare": bare(ADMIN_SECRET),
        "lacking_permission": bearer(SECRET_OF[NEEDS.get(route, Permission.READ)]),
        "scoped_to_app": basic("web-admin", APP_SECRET),
        "scoped_to_other_app": bearer(OTHER_APP_SECRET),
        "own_token": bearer(w.alice["token"]),
        "other_users_token": bearer(w.bob["token"]),
    }[caller]


def _check_done(route: str, caller: str, body: Any, w: World) -> None:
    alice = w.alice["id"]
    presented = w.alice if caller == "own_token" else w.bob  # forward auth: whose token
    checks: dict[str, Callable[[], bool]] = {
        "v1.issue": lambda: body["user_id"] == "alice" and body["token"].startswith("tks_"),
        "v1.introspect": lambda: body["active"] is True and body["id"] == alice,
        "v1.get_token": lambda: body["id"] == alice,
        "v1.revoke_by_id": lambda: body == {"revoked": [alice]},
        "v1.revoke_by_value": lambda: body == {"revoked": [alice]},
        "v1.list_user_tokens": lambda: [t["id"] for t in body["tokens"]] == [alice],
        "v1.revoke_user_tokens": lambda: body == {"revoked": [alice]},
        "v1.user_events": lambda: [e["kind"] for e in body["events"]] == ["token"],
        "v1.list_app_tokens": lambda: len(body["tokens"]) == 2,
        "v1.revoke_app_tokens": lambda: isinstance(body["revoked_before"], int),
        "v1.events": lambda: body == {"events": ["token", "ready"]},
        "authz.check": lambda: body == {"id": presented["id"], "user_id": presented["user_id"]},
        "v1.rotate": lambda: body["session_id"] == alice and body["token"].startswith("tks_"),
        "v1.list_sessions": lambda: [s["session_id"] for s in body["sessions"]] == [alice],
        "v1.revoke_session": lambda: body == {"revoked": [alice]},
    }
    assert checks[route](), body


async def _answer(route: str, response: ClientResponse) -> Any:
    """The JSON body; for an open feed, the kinds of its messages up to ``ready`` (then it is
    closed); for a passed forward-auth check, the identity its headers tell."""
    if response.status == 200 and route == "v1.events":
        assert response.headers["Content-Type"] == "text/event-stream"
        messages = sse.parse(response.content.readline)
        kinds: list[str | None] = []
        async with asyncio.timeout(5):
            while kinds[-1:] != ["ready"]:
                kinds.append((await anext(messages)).event)
        response.close()
        return {"events": kinds}
    if response.status == 200 and route == "authz.check":
        assert await response.read() == b""
        identity = Identity.from_headers(response.headers)
        return {"id": identity.token_id, "user_id": identity.user_id}
    return await response.json()


def _challenge(route: str, caller: str) -> str:
    """How a 401 starts: forward auth speaks RFC 6750 to the token's holder, the rest names
    both schemes a client may use."""
    if route.startswith("authz."):
        return "Bearer" if caller == "no_credentials" else 'Bearer error="invalid_token"'
    return 'Basic realm="tokenstore"'


def _secrets(w: World) -> list[str]:
    values = [ADMIN_SECRET, APP_SECRET, OTHER_APP_SECRET, *SECRET_OF.values()]
    return [*values, w.alice["token"], w.bob["token"], "tkc_not-the-secret"]


@pytest.mark.parametrize(("route", "caller"), CELLS)
async def test_cell(
    route: str,
    caller: str,
    anon: Client,
    redis: AnyRedis,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = MATRIX[route][CALLERS.index(caller)]
    method, path, body = _request(route, world)
    before = await snapshot(redis)
    caplog.set_level(logging.DEBUG)
    response = await anon.request(method, path, json=body, headers=_headers(caller, route, world))
    answer = await _answer(route, response)
    if expected == OK:
        assert 200 <= response.status < 300, answer
        _check_done(route, caller, answer, world)
    elif expected == NONE:
        assert (response.status, answer) == (200, ABSENT[route])
    else:
        assert response.status == expected, answer
        assert set(answer) == {"error", "message"}
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith(_challenge(route, caller))
    changed = expected == OK and route in WRITES
    assert (await snapshot(redis) != before) == changed
    minted = route in {"v1.issue", "v1.rotate"}
    shown = str({**answer, "token": None}) if minted and "token" in answer else str(answer)
    for secret in _secrets(world):
        assert secret not in shown and secret not in caplog.text


async def test_the_matrix_covers_every_route(anon: Client) -> None:
    routes = {r.name: r for r in anon.app.router.routes() if r.name}
    names = {name for name in routes if name.startswith(("v1.", "authz."))}
    assert names == set(MATRIX) | set(SAME_AS)
    rules = anon.app[RULES]
    for name, row in SAME_AS.items():
        assert routes[name].handler is routes[row].handler, name
        assert rules[name] == rules[row], name
    assert all(len(row) == len(CALLERS) for row in MATRIX.values())
