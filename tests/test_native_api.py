"""The native /v1 API through HTTP, on standalone Redis, Redis Cluster and the embedded store,
asserting on the answers and on what Redis holds."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from helpers import (
    ADMIN_HEADERS,
    Client,
    all_keys,
    dump_values,
    introspect,
    issue,
    token_fields,
    user_hashes,
)

from service.api.responses import STORE
from service.redis_client import AnyRedis

ODD_IDS = ["u{1}:x", "{}", "a b:c}{d", "ünï cødé 🔑", "x" * 256]


async def test_issue_then_introspect_returns_the_record(client: Client) -> None:
    body = await issue(
        client, "alice", "app", scopes=["email", "profile"], ttl=600, device_name="iPad",
        client_name="Client X", metadata={"ip": "10.0.0.1"}, type="FINGER_PRINT",
    )  # fmt: skip
    assert body["token"].startswith("tks_")
    assert body["expires_at"] - body["created_at"] == 600_000
    answer = await introspect(client, body["token"])
    assert answer.pop("active") is True
    assert answer == {k: v for k, v in body.items() if k != "token"}
    assert answer["scopes"] == ["email", "profile"]
    assert answer["metadata"] == {"ip": "10.0.0.1"}


async def test_every_key_has_a_ttl_and_no_secret_is_stored(client: Client, redis: AnyRedis) -> None:
    minted = await issue(client, "alice", "app", ttl=120)
    await issue(client, "bob", "app", token="external-refresh-token-value", ttl=120)
    r = cast(Any, redis)
    for key in await all_keys(redis):
        if key.endswith(b"meta"):
            continue  # the tag key: the one key that must outlive every token
        ttl = await r.pttl(key)
        assert 0 < ttl <= 120_000 + 2000, (key, ttl)
    stored = await dump_values(redis)
    secret = minted["token"].split("_")[3]
    assert secret[:20].encode() not in stored
    assert b"external-refresh-token-value" not in stored


async def test_user_hash_expires_with_its_latest_token(client: Client, redis: AnyRedis) -> None:
    latest = await issue(client, ttl=300)
    await issue(client, ttl=100)
    hashes = await user_hashes(redis)
    assert len(hashes) == 1 and len(token_fields(hashes)) == 2
    pexpiretime = await cast(Any, redis).execute_command("PEXPIRETIME", next(iter(hashes)))
    assert pexpiretime == latest["expires_at"]


async def test_malformed_forged_and_unknown_tokens_are_inactive(client: Client) -> None:
    token = (await issue(client))["token"]
    flipped = token[:-8] + ("a" if token[-8] != "a" else "b") + token[-7:]
    for value in ["", "x", "tks_", token[:-1], flipped, token + "a", "unknown-value", "é" * 5000]:
        response = await client.post("/v1/introspect", json={"token": value})
        assert response.status == 200
        assert await response.json() == {"active": False}, value


async def test_forged_secret_with_valid_checksum_is_inactive(client: Client) -> None:
    from service import tokens

    real = (await issue(client))["token"]
    tid = tokens.parse_minted(real)
    assert tid is not None
    forged = tokens.mint(tid)  # right id and checksum, wrong secret
    assert await introspect(client, forged) == {"active": False}
    assert (await introspect(client, real))["active"] is True


@pytest.mark.parametrize("user_id", ODD_IDS)
async def test_odd_user_and_app_ids(client: Client, user_id: str) -> None:
    from urllib.parse import quote

    body = await issue(client, user_id, user_id)
    assert (await introspect(client, body["token"]))["user_id"] == user_id
    listed = await client.get(f"/v1/users/{quote(user_id, safe='')}/tokens")
    assert [t["id"] for t in (await listed.json())["tokens"]] == [body["id"]]
    app_page = await client.get(f"/v1/apps/{quote(user_id, safe='')}/tokens")
    assert [t["id"] for t in (await app_page.json())["tokens"]] == [body["id"]]
    revoked = await client.delete(f"/v1/users/{quote(user_id, safe='')}/tokens")
    assert (await revoked.json())["revoked"] == [body["id"]]


async def test_get_and_revoke_by_id(client: Client, redis: AnyRedis) -> None:
    body = await issue(client)
    got = await client.get(f"/v1/tokens/{body['id']}")
    assert got.status == 200
    assert (await got.json())["id"] == body["id"]
    first = await client.delete(f"/v1/tokens/{body['id']}")
    assert await first.json() == {"revoked": [body["id"]]}
    again = await client.delete(f"/v1/tokens/{body['id']}")
    assert await again.json() == {"revoked": []}
    assert (await client.get(f"/v1/tokens/{body['id']}")).status == 404
    assert await introspect(client, body["token"]) == {"active": False}
    assert await user_hashes(redis) == {}  # the hash went with its last token


async def test_revoke_by_value(client: Client) -> None:
    keep = await issue(client)
    body = await issue(client)
    response = await client.post("/v1/revoke", json={"token": body["token"]})
    assert await response.json() == {"revoked": [body["id"]]}
    assert await introspect(client, body["token"]) == {"active": False}
    assert (await introspect(client, keep["token"]))["active"] is True
    unknown = await client.post("/v1/revoke", json={"token": "nothing-like-it"})
    assert await unknown.json() == {"revoked": []}


async def test_registered_token_lifecycle(client: Client, redis: AnyRedis) -> None:
    body = await issue(client, "bob", "idp", token="idp-refresh-1", ttl=60)
    assert "token" not in body
    assert (await introspect(client, "idp-refresh-1"))["id"] == body["id"]
    dup = await client.post(
        "/v1/tokens", json={"user_id": "eve", "app_id": "idp", "token": "idp-refresh-1"}
    )
    assert dup.status == 409
    assert (await dup.json())["error"] == "token_exists"
    revoked = await client.post("/v1/revoke", json={"token": "idp-refresh-1"})
    assert await revoked.json() == {"revoked": [body["id"]]}
    assert await introspect(client, "idp-refresh-1") == {"active": False}
    assert [k for k in await all_keys(redis) if b"p:" in k] == []
    assert await user_hashes(redis) == {}
    again = await issue(client, "bob", "idp", token="idp-refresh-1")  # re-registrable
    assert (await introspect(client, "idp-refresh-1"))["id"] == again["id"]


async def test_registering_our_own_format_is_refused(client: Client) -> None:
    response = await client.post(
        "/v1/tokens", json={"user_id": "u", "app_id": "a", "token": "tks_something"}
    )
    assert response.status == 400


async def test_a_null_token_is_refused_not_minted(client: Client, redis: AnyRedis) -> None:
    response = await client.post("/v1/tokens", json={"user_id": "u", "app_id": "a", "token": None})
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid_field",
        "message": "token must be a string, not null",
    }
    assert await user_hashes(redis) == {}
    # Every other optional field takes null for its default.
    defaults = {"ttl": None, "type": None, "scopes": None, "client_name": None, "metadata": None}
    body = await issue(client, "u", "a", **defaults)
    assert (body["type"], body["scopes"], body["expires_at"] - body["created_at"]) == (
        "DEFAULT",
        [],
        3600 * 1000,
    )


async def test_ttl_is_any_json_integer_and_type_any_text_without_controls(client: Client) -> None:
    # 60.0 is an integer to JSON Schema (and to the OpenAPI document): so it is here.
    body = await issue(client, "u", "a", ttl=60.0, type="Gerät\u00a0ü")
    assert (body["expires_at"] - body["created_at"], body["type"]) == (60_000, "Gerät\u00a0ü")
    fraction = await client.post("/v1/tokens", json={"user_id": "u", "app_id": "a", "ttl": 1.5})
    assert fraction.status == 400


async def test_list_user_tokens_newest_first_and_by_app(client: Client) -> None:
    first = await issue(client, "alice", "web")
    second = await issue(client, "alice", "mobile")
    await issue(client, "bob", "web")
    listed = await (await client.get("/v1/users/alice/tokens")).json()
    assert [t["id"] for t in listed["tokens"]] == [second["id"], first["id"]]
    web = await (await client.get("/v1/users/alice/tokens?app_id=web")).json()
    assert [t["id"] for t in web["tokens"]] == [first["id"]]
    nobody = await (await client.get("/v1/users/nobody/tokens")).json()
    assert nobody == {"tokens": []}


async def test_revoke_user_everywhere_by_app_and_except(client: Client) -> None:
    a1 = await issue(client, "alice", "web")
    a2 = await issue(client, "alice", "web")
    a3 = await issue(client, "alice", "mobile")
    bob = await issue(client, "bob", "web")
    by_app = await client.delete(f"/v1/users/alice/tokens?app_id=web&except={a2['id']}")
    assert (await by_app.json())["revoked"] == [a1["id"]]
    everywhere = await client.delete(f"/v1/users/alice/tokens?except={a3['id']}")
    assert (await everywhere.json())["revoked"] == [a2["id"]]
    assert (await introspect(client, a3["token"]))["active"] is True
    assert (await introspect(client, bob["token"]))["active"] is True
    rest = await client.delete("/v1/users/alice/tokens")
    assert (await rest.json())["revoked"] == [a3["id"]]


async def test_app_listing_pages_through_every_token(client: Client) -> None:
    issued = {(await issue(client, f"user-{i % 7}", "app"))["id"] for i in range(23)}
    await issue(client, "user-1", "other-app")
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page = await (await client.get(f"/v1/apps/app/tokens?limit=5&cursor={cursor}")).json()
        assert len(page["tokens"]) <= 5
        seen += [t["id"] for t in page["tokens"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(issued)


async def test_app_revocation_is_immediate_and_swept(client: Client, redis: AnyRedis) -> None:
    old = [await issue(client, f"u{i}", "app") for i in range(5)]
    other = await issue(client, "u0", "other")
    response = await client.delete("/v1/apps/app/tokens")
    assert response.status == 200
    assert isinstance((await response.json())["revoked_before"], int)
    for body in old:
        assert await introspect(client, body["token"]) == {"active": False}
    for _ in range(50):  # the sweep runs in the background
        hashes = await user_hashes(redis)
        if len(token_fields(hashes)) == 1:
            break
        await asyncio.sleep(0.1)
    assert len(token_fields(hashes)) == 1  # `other` remains; the 5 old ones are gone
    # u1..u4 held nothing else: their tokens went, and only the sweep's mark stays, briefly.
    emptied = [fields for fields in hashes.values() if not token_fields({b"": fields})]
    assert [set(fields) for fields in emptied] == [{b"s"}] * 4
    for key in hashes:
        if not token_fields({key: hashes[key]}):
            assert 0 < await redis.pttl(key) <= 10_000
    new = await issue(client, "u0", "app")
    assert (await introspect(client, new["token"]))["active"] is True
    assert (await introspect(client, other["token"]))["active"] is True
    listed = await (await client.get("/v1/apps/app/tokens")).json()
    assert [t["id"] for t in listed["tokens"]] == [new["id"]]


async def test_a_token_issued_while_its_app_is_swept_stays_listed(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An issue indexes its user before storing the token (other slots); an app sweep that
    looks at the user in between finds nothing and drops it from the index. The token must
    still be listed (and so found by the app's next sweep)."""
    store = client.app[STORE]
    real_run = store.run

    async def sweep_first(op: str, script: Any, keys: list[str], args: Any) -> Any:
        if op == "issue":  # the user is indexed; its token is not stored yet
            await store.apps.sweep("racy", 0, lambda: False)
        return await real_run(op, script, keys, args)

    monkeypatch.setattr(store, "run", sweep_first)
    body = await issue(client, "newcomer", "racy")
    monkeypatch.undo()
    listed = await (await client.get("/v1/apps/racy/tokens")).json()
    assert [t["id"] for t in listed["tokens"]] == [body["id"]]


def _rid(token_id: str) -> bytes:
    return bytes.fromhex(token_id.replace("-", "")[16:])


async def test_expired_tokens_are_never_served_and_pruned_by_the_next_write(
    client: Client, redis: AnyRedis
) -> None:
    short = await issue(client, "alice", "app", ttl=1)
    long = await issue(client, "alice", "app", ttl=60)
    await asyncio.sleep(1.2)
    # Still stored (nothing wrote since), but never served: expiry is checked on every read.
    assert _rid(short["id"]) in token_fields(await user_hashes(redis))
    assert await introspect(client, short["token"]) == {"active": False}
    assert (await client.get(f"/v1/tokens/{short['id']}")).status == 404
    listed = await (await client.get("/v1/users/alice/tokens")).json()
    assert [t["id"] for t in listed["tokens"]] == [long["id"]]
    assert (await (await client.delete(f"/v1/tokens/{short['id']}")).json())["revoked"] == []
    third = await issue(client, "alice", "app", ttl=60)  # the next write prunes it
    fields = token_fields(await user_hashes(redis))
    assert sorted(fields) == sorted([_rid(long["id"]), _rid(third["id"])])


async def test_the_user_hash_expires_with_its_last_token(client: Client, redis: AnyRedis) -> None:
    body = await issue(client, "alice", "app", ttl=1)
    assert len(await user_hashes(redis)) == 1
    await asyncio.sleep(1.2)
    assert await user_hashes(redis) == {}  # Redis expired the key itself: no write needed
    assert await introspect(client, body["token"]) == {"active": False}


async def test_per_user_limit_revokes_the_oldest(aiohttp_client: Any, settings: Any) -> None:
    import dataclasses

    from service.app import create_app

    app = create_app(dataclasses.replace(settings, max_tokens_per_user=2))
    client = await aiohttp_client(app, headers=ADMIN_HEADERS)
    first = await issue(client, "alice", "web")
    second = await issue(client, "alice", "web")
    third = await issue(client, "alice", "mobile")
    await issue(client, "bob", "web")
    assert await introspect(client, first["token"]) == {"active": False}
    listed = await (await client.get("/v1/users/alice/tokens")).json()
    assert [t["id"] for t in listed["tokens"]] == [third["id"], second["id"]]


async def test_concurrent_issue_and_revoke_all_leave_no_orphan(
    client: Client, redis: AnyRedis
) -> None:
    async def issue_many() -> None:
        for _ in range(20):
            await issue(client, "alice", "app")

    async def revoke_many() -> None:
        for _ in range(20):
            await client.delete("/v1/users/alice/tokens")

    await asyncio.gather(issue_many(), issue_many(), revoke_many())
    await client.delete("/v1/users/alice/tokens")
    assert await user_hashes(redis) == {}


async def test_events_record_revocations(client: Client, redis: AnyRedis) -> None:
    body = await issue(client, "alice", "app")
    await client.delete(f"/v1/tokens/{body['id']}")
    await client.delete("/v1/apps/app/tokens")
    events = await cast(Any, redis).xrange("ts:events")
    kinds = [fields[b"kind"] for _id, fields in events]
    assert kinds == [b"token", b"app"]
    assert events[0][1][b"ids"] == body["id"].encode()


async def test_an_id_clash_is_reported_so_another_id_is_drawn(client: Client) -> None:
    from service import tokens
    from service.api.responses import SERVICE
    from service.storage import IdClash

    store = client.app[STORE]
    body = await issue(client, "alice", "app")
    taken = tokens.parse_id(body["id"])
    assert taken is not None
    draft = client.app[SERVICE].draft(user_id="alice", app_id="app")
    with pytest.raises(IdClash):  # a Redis reply, not an error turned into a 503
        await store.issue(taken, draft, b"x" * 16, 60_000, 0)
    assert (await introspect(client, body["token"]))["active"] is True  # untouched
