"""Sessions: every token belongs to one login; listing, joining and revoking sessions, seen
through every dialect, on standalone Redis, Redis Cluster and the embedded store."""

from __future__ import annotations

from typing import Any, cast

import orjson
from helpers import Client, bearer, call_as, introspect, issue, user_hashes
from test_feed import Events

from service.events import EventKind, RevocationEvent
from service.gateway_cache import Invalidation
from service.identity import Identity
from service.records import HEADER_BYTES, SEP
from service.redis_client import AnyRedis


async def sessions(client: Client, user_id: str = "alice", query: str = "") -> Any:
    response = await client.get(f"/v1/users/{user_id}/sessions{query}")
    assert response.status == 200, await response.text()
    return (await response.json())["sessions"]


async def test_a_token_starts_its_own_session_and_stays_compact(
    client: Client, redis: AnyRedis
) -> None:
    body = await issue(client, ttl=600)
    assert body["session_id"] == body["id"]
    assert body["idle_ttl"] == 0 and body["last_used_at"] == body["created_at"]
    # No session piece for a plain token: records are as small as before sessions.
    [fields] = (await user_hashes(redis)).values()
    [record] = [value for field, value in fields.items() if len(field) == 8]
    assert record[HEADER_BYTES:].count(SEP) == 6


async def test_joining_a_session_and_listing_sessions(client: Client) -> None:
    login = await issue(client, device_name="Pixel", client_name="web app")
    joined = await issue(client, session_id=login["session_id"], device_name="Pixel")
    other = await issue(client, device_name="iPad")
    assert joined["session_id"] == login["id"]
    listed = await sessions(client)
    assert [s["session_id"] for s in listed] == [other["id"], login["id"]]
    assert listed[1] == {
        "session_id": login["id"],
        "app_id": "app",
        "device_name": "Pixel",
        "client_name": None,  # the newest token's
        "created_at": login["created_at"],
        "last_used_at": joined["created_at"],
        "token_ids": [joined["id"], login["id"]],
    }
    assert await sessions(client, query="?app_id=elsewhere") == []


async def test_joining_needs_a_live_session_of_that_user_and_app(client: Client) -> None:
    login = await issue(client, "alice", "app")
    for user, app in [("bob", "app"), ("alice", "other")]:
        response = await client.post(
            "/v1/tokens", json={"user_id": user, "app_id": app, "session_id": login["id"]}
        )
        assert response.status == 404, (user, app)
        assert (await response.json())["error"] == "session_not_found"
    await client.delete(f"/v1/sessions/{login['id']}")
    gone = await client.post(
        "/v1/tokens", json={"user_id": "alice", "app_id": "app", "session_id": login["id"]}
    )
    assert gone.status == 404
    for bad in [{"session_id": "nope"}, {"session_id": login["id"], "session_max_ttl": 5}]:
        response = await client.post("/v1/tokens", json={"user_id": "a", "app_id": "b", **bad})
        assert response.status == 400, bad


async def test_revoking_a_session_revokes_exactly_its_tokens(client: Client) -> None:
    login = await issue(client)
    joined = await issue(client, session_id=login["id"])
    other = await issue(client)
    response = await client.delete(f"/v1/sessions/{login['id']}")
    assert sorted((await response.json())["revoked"]) == sorted([login["id"], joined["id"]])
    assert (await introspect(client, login["token"])) == {"active": False}
    assert (await introspect(client, joined["token"])) == {"active": False}
    assert (await introspect(client, other["token"]))["active"] is True
    assert (await (await client.delete(f"/v1/sessions/{login['id']}")).json()) == {"revoked": []}
    events = (await (await client.get("/v1/users/alice/events")).json())["events"]
    assert events[0]["kind"] == "session"
    assert events[0]["reason"] == "revoked" and events[0]["session_id"] == login["id"]
    assert sorted(events[0]["ids"]) == sorted([login["id"], joined["id"]])


async def test_self_service_logs_out_own_sessions_only(client: Client) -> None:
    mine = await issue(client, "alice")
    phone = await issue(client, "alice")
    bobs = await issue(client, "bob")
    as_alice = bearer(mine["token"])
    status, _, body = await call_as(client, as_alice, "DELETE", f"/v1/sessions/{bobs['id']}")
    assert (status, body) == (200, {"revoked": []})
    status, _, body = await call_as(client, as_alice, "GET", "/v1/users/alice/sessions")
    assert status == 200 and len(body["sessions"]) == 2
    status, _, body = await call_as(client, as_alice, "DELETE", f"/v1/sessions/{phone['id']}")
    assert (status, body) == (200, {"revoked": [phone["id"]]})
    assert (await introspect(client, bobs["token"]))["active"] is True
    events = (await (await client.get("/v1/users/alice/events")).json())["events"]
    latest = events[0]
    assert (latest["kind"], latest["reason"], latest["actor"]) == ("session", "user", "self")


async def test_log_out_everywhere_but_this_session(client: Client) -> None:
    here = await issue(client)
    here_too = await issue(client, session_id=here["id"])
    there = await issue(client)
    rotated = await client.post("/v1/tokens/rotate", json={"token": here_too["token"]})
    successor = await rotated.json()
    response = await client.delete(f"/v1/users/alice/tokens?except_session={here['id']}")
    assert (await response.json())["revoked"] == [there["id"]]
    assert (await introspect(client, here["token"]))["active"] is True
    assert (await introspect(client, successor["token"]))["active"] is True
    bad = await client.delete("/v1/users/alice/tokens?except_session=nope")
    assert bad.status == 400


async def test_session_revocation_is_seen_through_every_listing(client: Client) -> None:
    login = await issue(client, "carol", "app", device_name="Pixel", idle_ttl=600)
    rotated = await (await client.post("/v1/tokens/rotate", json={"token": login["token"]})).json()
    kept = await issue(client, "carol", "app", device_name="iPad")
    fusion = (await (await client.get("/api/jwt/refresh?userId=carol")).json())["refreshTokens"]
    assert [t["id"] for t in fusion] == [kept["id"], rotated["id"]]
    assert fusion[1]["startInstant"] == login["created_at"]  # the session's start
    assert fusion[1]["insertInstant"] == rotated["created_at"]
    assert fusion[1]["metaData"]["device"]["lastAccessedInstant"] == rotated["last_used_at"]
    assert "lastAccessedInstant" not in fusion[0]["metaData"]["device"]  # uses not recorded

    await client.delete(f"/v1/sessions/{login['id']}")
    only_kept = [kept["id"]]
    native = (await (await client.get("/v1/users/carol/tokens")).json())["tokens"]
    assert [t["id"] for t in native] == only_kept
    assert [s["session_id"] for s in await sessions(client, "carol")] == [kept["id"]]
    fusion = (await (await client.get("/api/jwt/refresh?userId=carol")).json())["refreshTokens"]
    assert [t["id"] for t in fusion] == only_kept
    onegini = await (await client.get("/oauth/api/v1/users/carol/tokens")).json()
    assert [t["id"] for t in onegini["tokens"]] == only_kept
    page = await (await client.get("/v1/apps/app/tokens")).json()
    assert [t["id"] for t in page["tokens"]] == only_kept
    oauth = await client.post("/oauth2/introspect", data={"token": rotated["token"]})
    assert await oauth.json() == {"active": False}
    authz = await call_as(client, bearer(rotated["token"]), "GET", "/v1/authz")
    assert authz[0] == 401
    assert (await client.get(f"/api/jwt/refresh/{rotated['id']}")).status == 404


async def test_a_session_event_drops_cached_answers_by_id() -> None:
    event = RevocationEvent(
        EventKind.SESSION, "app", user_id="u", ids=("t1", "t2"), session_id="t1", reason="reuse"
    )
    fields = event.stream_fields()
    assert (fields["session_id"], fields["reason"]) == ("t1", "reuse")
    assert RevocationEvent.from_fields(cast(dict[str, Any], fields)) == event
    assert event.feed_body()["reason"] == "reuse"
    invalidation = Invalidation.from_event(event)
    assert invalidation.matches(Identity("t2", "u", "app", (), 0))
    assert not invalidation.matches(Identity("t3", "u", "app", (), 0))


async def test_session_events_reach_the_feed(client: Client) -> None:
    events = Events(await client.get("/v1/events"))
    assert (await events.next()).event == "ready"
    logout = await issue(client, "dave", "web")
    stolen = await issue(client, "dave", "web")
    await client.delete(f"/v1/sessions/{logout['id']}")
    await client.post("/v1/tokens/rotate", json={"token": stolen["token"]})
    await client.post("/v1/tokens/rotate", json={"token": stolen["token"]})
    got = [await events.next() for _ in range(2)]
    assert [m.event for m in got] == ["session", "session"]
    bodies = [orjson.loads(m.data or "") for m in got]
    assert (bodies[0]["reason"], bodies[0]["ids"]) == ("revoked", [logout["id"]])
    assert (bodies[1]["reason"], bodies[1]["session_id"]) == ("reuse", stolen["id"])
    assert bodies[1]["user_id"] == "dave" and len(bodies[1]["ids"]) == 1  # the successor
    # What the gateway client makes of it.
    parsed = RevocationEvent.from_feed("session", got[1].data or "")
    assert parsed is not None and parsed.ids == tuple(bodies[1]["ids"])
