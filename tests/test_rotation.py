"""Refresh-token rotation with reuse detection (POST /v1/tokens/rotate), on standalone Redis,
Redis Cluster and the embedded store: chains, reuse after 1, 2 and 50 generations, the grace
for the immediate predecessor only, the session's absolute limit, and concurrent rotations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    ADMIN_HEADERS,
    Client,
    add_clients,
    basic,
    bearer,
    call_as,
    client_entry,
    introspect,
    issue,
)

from service.api.responses import STORE
from service.app import create_app
from service.settings import Settings
from service.tokens import TokenId

AiohttpClient = Any


async def rotate(client: Client, token: str) -> tuple[int, Any]:
    response = await client.post("/v1/tokens/rotate", json={"token": token})
    return response.status, await response.json()


async def rotated(client: Client, token: str) -> Any:
    status, body = await rotate(client, token)
    assert status == 201, body
    return body


async def chain(client: Client, length: int, **extra: Any) -> list[Any]:
    """A login and ``length`` rotations of it: every generation's issue answer."""
    tokens = [await issue(client, scopes=["offline"], device_name="Pixel", ttl=600, **extra)]
    for _ in range(length):
        tokens.append(await rotated(client, tokens[-1]["token"]))
    return tokens


async def live(client: Client, token: str) -> bool:
    answer = await introspect(client, token)
    return bool(answer["active"])


@pytest.fixture
async def graceful(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    """The app with a 30-second rotation grace."""
    graced = Settings(
        redis_url=settings.redis_url, clients_file=settings.clients_file, rotation_grace=30
    )
    client: Client = await aiohttp_client(create_app(graced), headers=ADMIN_HEADERS)
    return client


async def test_a_chain_of_100_rotations(client: Client) -> None:
    tokens = await chain(client, 100, metadata={"k": "v"}, client_name="web")
    first, last = tokens[0], tokens[-1]
    assert len({t["id"] for t in tokens}) == 101
    for earlier in tokens[:-1]:
        assert not await live(client, earlier["token"])
    answer = await introspect(client, last["token"])
    assert answer["active"] is True and answer["session_id"] == first["id"]
    for name in ["user_id", "app_id", "type", "scopes", "device_name", "client_name", "metadata"]:
        assert answer[name] == first[name], name
    assert answer["expires_at"] - answer["created_at"] == 600_000  # a fresh, equal lifetime
    kept = await client.get(f"/v1/tokens/{tokens[50]['id']}")
    assert (await kept.json())["rotated"] is True
    listed = (await (await client.get("/v1/users/alice/tokens")).json())["tokens"]
    assert [t["id"] for t in listed] == [last["id"]]
    assert "rotated" not in listed[0]


@pytest.mark.parametrize("generations", [1, 2, 50])
async def test_reuse_revokes_the_whole_session(client: Client, generations: int) -> None:
    tokens = await chain(client, 50)
    elsewhere = await issue(client)
    stolen = tokens[-1 - generations]
    status, body = await rotate(client, stolen["token"])
    assert (status, body["error"]) == (400, "token_reused")
    assert not await live(client, tokens[-1]["token"])
    assert await live(client, elsewhere["token"])
    assert (await client.get(f"/v1/tokens/{tokens[-1]['id']}")).status == 404
    status, body = await rotate(client, tokens[-1]["token"])  # the session is gone
    assert (status, body["error"]) == (400, "invalid_token")
    events = (await (await client.get("/v1/users/alice/events")).json())["events"]
    assert (events[0]["kind"], events[0]["reason"]) == ("session", "reuse")
    assert events[0]["session_id"] == tokens[0]["id"] and events[0]["ids"] == [tokens[-1]["id"]]


async def test_no_grace_by_default(client: Client) -> None:
    first, second = await chain(client, 1)
    status, body = await rotate(client, first["token"])
    assert (status, body["error"]) == (400, "token_reused")
    assert not await live(client, second["token"])


async def test_grace_only_for_the_immediate_predecessor(graceful: Client) -> None:
    first, second = await chain(graceful, 1)
    retry = await rotated(graceful, first["token"])  # a client's concurrent refresh
    assert retry["session_id"] == first["id"]
    assert not await live(graceful, second["token"])  # the successor it replaces
    assert await live(graceful, retry["token"])
    third = await rotated(graceful, retry["token"])
    # `first` is now two generations behind the live token: reuse, even within the grace.
    status, body = await rotate(graceful, first["token"])
    assert (status, body["error"]) == (400, "token_reused")
    assert not await live(graceful, third["token"])


async def test_grace_ends(client: Client, settings: Settings, aiohttp_client: Any) -> None:
    short = Settings(
        redis_url=settings.redis_url, clients_file=settings.clients_file, rotation_grace=1
    )
    graced: Client = await aiohttp_client(create_app(short), headers=ADMIN_HEADERS)
    first, second = await chain(graced, 1)
    await asyncio.sleep(1.1)
    status, body = await rotate(graced, first["token"])
    assert (status, body["error"]) == (400, "token_reused")
    assert not await live(graced, second["token"])


async def test_what_cannot_be_rotated(client: Client) -> None:
    revoked = await issue(client)
    await client.delete(f"/v1/tokens/{revoked['id']}")
    short = await issue(client, ttl=1)
    registered = await issue(client, token="external-value-1")
    await asyncio.sleep(1.05)
    for value in [revoked["token"], short["token"], "tks_nope", "unknown-value", "x" * 5000]:
        status, body = await rotate(client, value)
        assert (status, body["error"]) == (400, "invalid_token"), value
    successor = await rotated(client, "external-value-1")  # registered: rotates to a minted one
    assert successor["token"].startswith("tks_") and successor["session_id"] == registered["id"]
    status, body = await rotate(client, "external-value-1")
    assert (status, body["error"]) == (400, "token_reused")
    for bad in [{}, {"token": 5}, {"token": "x", "more": 1}]:
        assert (await client.post("/v1/tokens/rotate", json=bad)).status == 400


async def test_rotation_never_outlives_the_session(client: Client) -> None:
    login = await issue(client, ttl=600, session_max_ttl=3)
    assert login["expires_at"] - login["created_at"] == 3000
    successor = await rotated(client, login["token"])
    assert successor["expires_at"] <= login["created_at"] + 3000
    joined = await issue(client, ttl=600, session_id=login["id"])
    assert joined["expires_at"] <= login["created_at"] + 3000
    bad = await client.post(
        "/v1/tokens", json={"user_id": "a", "app_id": "b", "session_max_ttl": 0}
    )
    assert bad.status == 400


async def test_who_may_rotate(
    settings: Settings, clients_file: Path, aiohttp_client: AiohttpClient
) -> None:
    add_clients(
        clients_file,
        client_entry("reader", "tkc_reader-secret-000000000000", ["read"], ["*"]),
        client_entry("other-app", "tkc_other-secret-0000000000000", ["issue"], ["other"]),
    )
    fresh: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    login = await issue(fresh)
    path = "/v1/tokens/rotate"
    # The holder: no credentials at all, or the very token as Bearer.
    status, _, first = await call_as(fresh, None, "POST", path, json={"token": login["token"]})
    assert status == 201
    status, _, second = await call_as(
        fresh, bearer(first["token"]), "POST", path, json={"token": first["token"]}
    )
    assert status == 201
    # Another token as Bearer is no client: 401. A client without `issue`: 403.
    status, _, _ = await call_as(
        fresh, bearer(login["token"]), "POST", path, json={"token": second["token"]}
    )
    assert status == 401
    reader = basic("reader", "tkc_reader-secret-000000000000")
    status, _, _ = await call_as(fresh, reader, "POST", path, json={"token": second["token"]})
    assert status == 403
    # A client of other apps is told the token is not live, and changes nothing.
    other = basic("other-app", "tkc_other-secret-0000000000000")
    status, _, body = await call_as(fresh, other, "POST", path, json={"token": second["token"]})
    assert (status, body["error"]) == (400, "invalid_token")
    assert await live(fresh, second["token"])
    # Nor may it set off another app's reuse detection with a rotated token it got hold of.
    status, _, body = await call_as(fresh, other, "POST", path, json={"token": first["token"]})
    assert (status, body["error"]) == (400, "invalid_token")
    assert await live(fresh, second["token"])
    # A rotated token presented by its holder is reuse, as from a client.
    status, _, body = await call_as(fresh, None, "POST", path, json={"token": first["token"]})
    assert (status, body["error"]) == (400, "token_reused")
    assert not await live(fresh, second["token"])


async def test_concurrent_rotations_leave_at_most_one_live_successor(client: Client) -> None:
    for _ in range(5):
        login = await issue(client)
        answers = await asyncio.gather(*(rotate(client, login["token"]) for _ in range(12)))
        successes = [body for status, body in answers if status == 201]
        failures = {body["error"] for status, body in answers if status != 201}
        assert len(successes) >= 1 and failures <= {"token_reused", "invalid_token"}
        alive = [s for s in successes if await live(client, s["token"])]
        assert len(alive) <= 1
        if failures:
            assert alive == []  # a second rotation was reuse: the session is gone
        listed = (await (await client.get("/v1/users/alice/tokens")).json())["tokens"]
        assert [t["id"] for t in listed] == [s["id"] for s in alive]
        await client.delete("/v1/users/alice/tokens")


async def test_rotated_records_are_not_live_tokens(client: Client) -> None:
    first, _second = await chain(client, 1)
    assert await (await client.delete(f"/v1/tokens/{first['id']}")).json() == {"revoked": []}
    revoked = await client.post("/v1/revoke", json={"token": first["token"]})
    assert await revoked.json() == {"revoked": []}
    status, body = await rotate(client, first["token"])  # still recognised as reuse
    assert (status, body["error"]) == (400, "token_reused")
    third, fourth = await chain(client, 1)
    everywhere = await (await client.delete("/v1/users/alice/tokens")).json()
    assert everywhere == {"revoked": [fourth["id"]]}  # the rotated record goes unmentioned
    assert (await client.get(f"/v1/tokens/{third['id']}")).status == 404


async def test_an_app_revoked_during_a_rotation_leaves_no_live_successor(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's watermark is in other slots than the rotation script's hash: an app revocation
    acknowledged just before the script runs must still stop the rotation."""
    store = client.app[STORE]
    login = await issue(client, app_id="racy", ttl=600)
    real_rotate = store.rotate
    successors: list[TokenId] = []

    async def revoke_app_first(
        tid: TokenId, digest: bytes, successor: TokenId, *args: Any, **kwargs: Any
    ) -> Any:
        await store.revoke_app("racy", 600_000)  # acknowledged before the script runs
        successors.append(successor)
        return await real_rotate(tid, digest, successor, *args, **kwargs)

    monkeypatch.setattr(store, "rotate", revoke_app_first)
    status, body = await rotate(client, login["token"])
    assert (status, body["error"]) == (400, "invalid_token")
    monkeypatch.undo()
    (successor,) = successors
    record, _ = await store.read(successor)
    assert record is None  # undone, not merely covered by the watermark
    assert not await live(client, login["token"])
