"""Forward auth (GET /v1/authz) and the cache hints, on every backend."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import pytest
from helpers import ADMIN_HEADERS, Client, call_as, issue

from service.app import create_app
from service.identity import Identity, decode_header, encode_header
from service.settings import Settings

INVALID = 'Bearer error="invalid_token"'
LIVE_HINT = "max-age=5, must-revalidate"
NEGATIVE_HINT = "max-age=1, must-revalidate"


class Answer(NamedTuple):
    status: int
    headers: Any
    body: Any


async def forward(
    client: Client, headers: Any, path: str = "/v1/authz", method: str = "GET"
) -> Answer:
    """A check carrying exactly these headers, as a gateway forwards them: never the admin
    credentials ``client`` sends by default (/v1/authz needs none; the token is the credential)."""
    return Answer(*await call_as(client, headers, method, path))


async def authz(
    client: Client, token: str | None, path: str = "/v1/authz", **headers: str
) -> Answer:
    """``token`` None: no Authorization header at all."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await forward(client, headers, path)


async def test_live_token_answers_its_identity(client: Client) -> None:
    body = await issue(client, "ünï cødé 🔑", "web app", scopes=["read", "write"], ttl=600)
    response = await authz(client, body["token"])
    assert response.status == 200
    assert response.body == b""
    identity = Identity.from_headers(response.headers)
    assert identity == Identity(
        body["id"], "ünï cødé 🔑", "web app", ("read", "write"), body["expires_at"]
    )
    assert response.headers["X-Token-User"] == "%C3%BCn%C3%AF%20c%C3%B8d%C3%A9%20%F0%9F%94%91"
    assert response.headers["Cache-Control"] == LIVE_HINT
    assert response.headers["Vary"] == "Authorization, X-Required-Scope, X-Required-App"


async def test_no_bad_unknown_or_revoked_token_is_401(client: Client) -> None:
    body = await issue(client)
    missing = await authz(client, None)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "bearer", body["token"]]:
        response = await forward(client, {"Authorization": header})
        assert response.status == 401, header
        assert response.headers["WWW-Authenticate"] == INVALID
    for token in ["unknown", body["token"][:-1], "é"]:
        response = await authz(client, token)
        assert (response.status, response.headers["WWW-Authenticate"]) == (401, INVALID)
        assert response.headers["Cache-Control"] == NEGATIVE_HINT
    twice = await forward(client, [("Authorization", f"Bearer {body['token']}")] * 2)
    assert twice.status == 401
    assert (await authz(client, body["token"])).status == 200
    await client.delete(f"/v1/tokens/{body['id']}")
    revoked = await authz(client, body["token"])
    assert (revoked.status, revoked.headers["WWW-Authenticate"]) == (401, INVALID)
    assert "X-Token-User" not in revoked.headers


async def test_required_scopes_and_app(client: Client) -> None:
    token = (await issue(client, "alice", "web", scopes=["read", "write"]))["token"]
    ok = [
        ("/v1/authz?scope=read", {}),
        ("/v1/authz?scope=read+write&app=web", {}),
        ("/v1/authz", {"X-Required-Scope": "write read", "X-Required-App": "web"}),
    ]
    for path, headers in ok:
        assert (await authz(client, token, path, **headers)).status == 200, (path, headers)
    lacking = await authz(client, token, "/v1/authz?scope=read", **{"X-Required-Scope": "admin"})
    assert lacking.status == 403
    assert lacking.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="admin"'
    )
    assert lacking.headers["Cache-Control"] == LIVE_HINT
    other_app = await authz(client, token, "/v1/authz?app=mobile")
    assert (other_app.status, other_app.headers["WWW-Authenticate"]) == (401, INVALID)
    # A client adding its own requirement can only make its check stricter.
    both = await authz(client, token, "/v1/authz?app=web", **{"X-Required-App": "mobile"})
    assert both.status == 401
    bad = await authz(client, token, "/v1/authz?scope=a%22b")
    assert bad.status == 400
    assert bad.headers["Cache-Control"] == "no-store"


async def test_required_app_header_is_percent_decoded(client: Client) -> None:
    token = (await issue(client, "alice", "app ü"))["token"]
    header = {"X-Required-App": encode_header("app ü")}
    assert (await authz(client, token, **header)).status == 200
    assert (await authz(client, token, **{"X-Required-App": "%FF"})).status == 400


async def test_requirements_are_refused_as_the_document_states(client: Client) -> None:
    token = (await issue(client, "alice", "app", scopes=["read", "write"]))["token"]
    assert (await authz(client, token, **{"X-Required-Scope": " read  write "})).status == 200
    # Scopes are separated by spaces only (RFC 6749 3.3): a tab is part of a bad scope.
    assert (await authz(client, token, **{"X-Required-Scope": "read\twrite"})).status == 400
    # Every "%" starts an escape (encode_header writes "%25"), and escapes spell UTF-8.
    for bad in ["50%", "%4", "%C0%80", "%ED%A0%80", "%F4%90%80%80"]:
        assert (await authz(client, token, **{"X-Required-App": bad})).status == 400, bad
    assert (await authz(client, token, **{"X-Required-App": "50%25"})).status == 401


async def test_envoy_form_takes_any_character_in_the_path(client: Client) -> None:
    # The client's path is not ours to judge: a newline in it (%0A) is checked like any path.
    token = (await issue(client, "alice", "web"))["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ["%0A", "a%0Ab%0D", "%F3%94%BB%B4%2B%C2%AE", "x%2F%0A/y"]:
        answer = await forward(client, bearer, f"/v1/authz/{path}", "PUT")
        assert (answer.status, answer.headers["X-Token-User"]) == (200, "alice"), path
        assert (await forward(client, None, f"/v1/authz/{path}", "PUT")).status == 401, path


async def test_cache_hints_follow_the_settings(
    aiohttp_client: Any, settings: Settings, client: Client
) -> None:
    short = await issue(client, ttl=3)
    hint = (await authz(client, short["token"])).headers["Cache-Control"]
    assert hint in {f"max-age={s}, must-revalidate" for s in (1, 2, 3)}  # capped by the expiry
    live = await client.post("/v1/introspect", json={"token": (await issue(client))["token"]})
    assert live.headers["Cache-Control"] == LIVE_HINT
    inactive = await client.post("/v1/introspect", json={"token": "nope"})
    assert inactive.headers["Cache-Control"] == NEGATIVE_HINT

    off = dataclasses.replace(settings, cache_max_age=0, negative_cache_max_age=0)
    uncached = await aiohttp_client(create_app(off), headers=ADMIN_HEADERS)
    token = (await issue(uncached))["token"]
    assert (await authz(uncached, token)).headers["Cache-Control"] == "no-store"
    assert (await authz(uncached, "nope")).headers["Cache-Control"] == "no-store"
    answer = await uncached.post("/v1/introspect", json={"token": token})
    assert answer.headers["Cache-Control"] == "no-store"


async def test_configured_header_accepts_a_bare_token(
    aiohttp_client: Any, settings: Settings
) -> None:
    custom = dataclasses.replace(settings, authz_header="X-Forwarded-Access-Token")
    client = await aiohttp_client(create_app(custom), headers=ADMIN_HEADERS)
    token = (await issue(client))["token"]
    bare = await forward(client, {"X-Forwarded-Access-Token": token})
    assert bare.status == 200
    assert bare.headers["Vary"].startswith("X-Forwarded-Access-Token,")
    prefixed = await forward(client, {"X-Forwarded-Access-Token": f"Bearer {token}"})
    assert prefixed.status == 200
    ignored = await authz(client, token)  # Authorization is not where this service looks
    assert (ignored.status, ignored.headers["WWW-Authenticate"]) == (401, "Bearer")


@pytest.mark.parametrize(
    "value", ["alice", "a b", "100%", "ünï", "tab\there", "cr\r\nlf", "\x00\x7f", "q\"u'o`te"]
)
def test_header_values_are_printable_ascii_and_round_trip(value: str) -> None:
    encoded = encode_header(value)
    assert all(0x21 <= ord(c) <= 0x7E for c in encoded), encoded
    assert decode_header(encoded) == value


async def test_envoy_form_keeps_any_method_and_path(client: Client) -> None:
    token = (await issue(client, "alice", "web", scopes=["read"]))["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]:
        response = await forward(client, bearer, "/v1/authz/api/orders/7", method)
        assert response.status == 200, method
        assert response.headers["X-Token-User"] == "alice"
    # The query is the client's own (?scope=openid on an OAuth endpoint): not a requirement.
    assert (await forward(client, bearer, "/v1/authz/authorize?scope=admin", "POST")).status == 200
    required = {**bearer, "X-Required-Scope": "admin"}
    assert (await forward(client, required, "/v1/authz/", "POST")).status == 403
    missing = await forward(client, None, "/v1/authz/x", "POST")
    assert (missing.status, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
