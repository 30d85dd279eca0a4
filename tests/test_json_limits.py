"""JSON nesting is bounded at input for every dialect, and no stored record can fail a listing
(not even one written before the bound existed, or damaged in Redis)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from helpers import Client, dump_values, introspect, issue

from service.api.responses import STORE
from service.events import EventKind, RevocationEvent
from service.json_limits import MAX_DEPTH, too_deep
from service.records import TokenDraft
from service.redis_client import AnyRedis
from service.store import TokenStore

STANDALONE = pytest.mark.parametrize("backend", ["standalone"], indirect=True)
DAY_MS = 86_400_000


def nested(depth: int) -> Any:
    """A JSON object nested ``depth`` deep ({} is 1 deep)."""
    return {} if depth <= 1 else {"a": nested(depth - 1)}


def nested_json(depth: int) -> bytes:
    """``nested(depth)`` as JSON text (orjson writes nothing deeper than 254)."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_depth_is_counted_as_json_nests() -> None:
    assert not too_deep("text", 0)
    assert too_deep({}, 0) and not too_deep({}, 1)
    assert not too_deep({"a": [1, {"b": None}]}, 3)
    assert too_deep({"a": [1, {"b": []}]}, 3)
    assert not too_deep(nested(MAX_DEPTH), MAX_DEPTH)
    assert too_deep(nested(MAX_DEPTH + 1), MAX_DEPTH)


@STANDALONE
async def test_metadata_up_to_the_limit_is_kept_and_listed(client: Client) -> None:
    deepest = nested(MAX_DEPTH - 1)  # the body holding it is MAX_DEPTH deep
    body = await issue(client, "u1", "app", metadata={"x": deepest["a"]})
    assert body["metadata"] == {"x": deepest["a"]}
    listed = await client.get("/v1/users/u1/tokens")
    assert (await listed.json())["tokens"][0]["metadata"] == body["metadata"]


@STANDALONE
async def test_a_deep_fusionauth_event_info_is_refused_before_revoking(
    client: Client, redis: AnyRedis
) -> None:
    body = await issue(client, "u1", "app")
    before = await dump_values(redis)
    for depth in (MAX_DEPTH, 254, 300):
        response = await client.delete(
            "/api/jwt/refresh",
            data=b'{"userId": "u1", "eventInfo": ' + nested_json(depth) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 400, depth
        answer = await response.json()
        assert set(answer) == {"fieldErrors", "generalErrors"}
        assert "deep" in answer["generalErrors"][0]["message"]
    assert (await introspect(client, body["token"]))["active"] is True
    assert await dump_values(redis) == before


async def _store_poisoned_record(client: Client) -> str:
    """A token whose metadata is 252 deep, stored the way versions without the bound did."""
    store: TokenStore = client.app[STORE]
    tid = await store.new_id("u1")
    draft = TokenDraft("u1", "app", "DEFAULT", ("read",), None, "phone", nested(252))
    await store.issue(tid, draft, b"\x01" * 16, DAY_MS, 0)
    return str(tid)


async def _store_damaged_metadata(client: Client, redis: AnyRedis) -> str:
    """A token whose stored metadata piece is not JSON at all (damaged in Redis)."""
    store: TokenStore = client.app[STORE]
    tid = await store.new_id("u1")
    draft = TokenDraft("u1", "app", "DEFAULT", (), None, None, {"k": "v"})
    await store.issue(tid, draft, b"\x02" * 16, DAY_MS, 0)
    r = cast(Any, redis)
    for key in await r.keys("ts:h:*"):
        for field, value in (await r.hgetall(key)).items():
            if value.endswith(b'{"k":"v"}'):
                await r.hset(key, field, value.replace(b'{"k":"v"}', b'{"k":'))
    return str(tid)


@STANDALONE
async def test_listings_survive_any_stored_metadata(client: Client, redis: AnyRedis) -> None:
    good = await issue(client, "u1", "app", metadata={"device": {"type": "MOBILE"}})
    poisoned = await _store_poisoned_record(client)
    damaged = await _store_damaged_metadata(client, redis)
    ids = {good["id"], poisoned, damaged}
    for path in ("/v1/users/u1/tokens", "/v1/apps/app/tokens"):
        response = await client.get(path)
        assert response.status == 200, path
        tokens = {t["id"]: t for t in (await response.json())["tokens"]}
        assert set(tokens) == ids
        assert tokens[good["id"]]["metadata"] == {"device": {"type": "MOBILE"}}
        assert tokens[poisoned]["metadata"] is None  # withheld, not a failed listing
        assert tokens[damaged]["metadata"] is None
    for token_id in (poisoned, damaged):
        one = await client.get(f"/v1/tokens/{token_id}")
        assert one.status == 200
        assert (await one.json())["metadata"] is None
        fa_one = await client.get(f"/api/jwt/refresh/{token_id}")
        assert fa_one.status == 200
    fusionauth = await client.get("/api/jwt/refresh?userId=u1")
    assert fusionauth.status == 200
    assert {t["id"] for t in (await fusionauth.json())["refreshTokens"]} == ids
    onegini = await client.get("/oauth/api/v1/users/u1/tokens")
    assert onegini.status == 200
    assert {t["id"] for t in (await onegini.json())["tokens"]} == ids


@STANDALONE
async def test_a_users_events_survive_a_deep_stored_info(client: Client) -> None:
    store: TokenStore = client.app[STORE]
    await issue(client, "u1", "app")
    deep = RevocationEvent(EventKind.USER, "app", "u1", ("x",), info=nested(252), at=1)
    await store.append_event(deep, DAY_MS, "u1")
    await client.delete("/v1/users/u1/tokens")
    response = await client.get("/v1/users/u1/events")
    assert response.status == 200
    events = (await response.json())["events"]
    assert len(events) == 2
    assert events[-1]["info"] is None  # withheld: deeper than any body may be
