"""Storage layout v2 and the Store protocol, on every backend: the store's own contract
(records, user ids, cursors in; no keys out), the layout-version check, the bounded prune of
big user hashes, and the app sweep's compare-and-delete."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from aiohttp import web
from helpers import ADMIN_HEADERS, Client, issue, token_fields, user_hashes
from redis_servers import RedisServer

from service.api.responses import STORE
from service.app import create_app
from service.keys import LAYOUT_VERSION
from service.keyspace import KeyspaceRefused, LayoutMismatch, UnsafeRedis
from service.records import TokenDraft
from service.redis_client import AnyRedis
from service.settings import Settings
from service.storage import Store
from service.store import TokenStore
from service.tokens import TokenId
from service.user_tokens import PRUNE_BUDGET

ROOT = Path(__file__).resolve().parent.parent
DIGEST = b"\x01" * 16


def _draft(user_id: str = "alice", app_id: str = "app") -> TokenDraft:
    return TokenDraft(user_id, app_id, "DEFAULT", ("read",), None, "phone", None)


def _store(client: Client) -> TokenStore:
    store: TokenStore = client.app[STORE]
    return store


async def test_the_store_keeps_its_contract(client: Client) -> None:
    store: Store = _store(client)  # only what the protocol offers, from here on
    tids = []
    for app in ("web", "web", "mobile"):
        tid = await store.new_id("alice")
        issued = await store.issue(tid, _draft(app_id=app), DIGEST, 60_000, 0)
        assert (issued.record.id, issued.record.app_id, issued.evicted) == (str(tid), app, [])
        tids.append(tid)
    record, marks = await store.read(tids[0])
    assert record is not None and record.user_id == "alice" and record.digest == DIGEST
    assert marks == {}
    assert {r.id for r in await store.list_user("alice")} == {str(t) for t in tids}
    assert await store.list_user("bob") == []
    pages = [(r.id, cursor) async for r, cursor in store.app_tokens("web", None)]
    assert sorted(i for i, _ in pages) == sorted(str(t) for t in tids[:2])
    rest = [r.id async for r, _ in store.app_tokens("web", pages[0][1])]
    assert rest == [pages[1][0]]
    assert await store.revoke_one(tids[0], user_id="bob", apps=None) is None  # not bob's
    assert await store.revoke_one(tids[0], user_id=None, apps={"mobile"}) is None  # not in apps
    one = await store.revoke_one(tids[0], user_id="alice", apps={"web"})
    assert one is not None and (one.app_id, one.user_id) == ("web", "alice")
    assert (await store.read(tids[0]))[0] is None
    revoked = await store.revoke_user("alice", apps=None, keep=tids[2])
    assert [(r.id, r.app_id) for r in revoked] == [(tids[1], "web")]
    assert [r.id for r in await store.list_user("alice")] == [str(tids[2])]


async def test_users_sharing_a_tag_see_only_their_own_tokens(client: Client) -> None:
    # A tag clash (1 in 2**64) is forced: bob's token goes into alice's hash.
    store = _store(client)
    alice = await store.new_id("alice")
    await store.issue(alice, _draft("alice"), DIGEST, 60_000, 0)
    bob = TokenId(alice.tag, "0123456789abcdef")
    issued = await store.issue(bob, _draft("bob"), DIGEST, 60_000, 0)
    assert issued.record.user_id == "bob"
    assert [r.id for r in await store.list_user("alice")] == [str(alice)]
    record, _ = await store.read(bob)
    assert record is not None and record.user_id == "bob"
    assert await store.revoke_one(bob, user_id="alice", apps=None) is None
    assert (await store.read(bob))[0] is not None


def test_the_service_sees_storage_only_through_the_protocol() -> None:
    tree = ast.parse((ROOT / "service" / "service.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    # store.py and its parts, and what they build on.
    parts = ["app_index", "app_watermarks", "event_log", "jwt_revocations", "keyspace"]
    parts += ["session_store", "store", "user_tokens", "watermark_copies"]
    layout = {f"service.{name}" for name in [*parts, "keys", "batching", "redis_client"]}
    assert imported & layout == set()
    assert not any(name.startswith("redis") for name in imported)


async def test_a_big_users_expired_tokens_are_pruned_a_bounded_number_at_a_time(
    client: Client, redis: AnyRedis, backend: str
) -> None:
    store = _store(client)
    # Past the compact (listpack) encoding, where HSCAN returns all at once: a real hash table.
    expiring = 600  # over 512, Debian's hash-max-listpack-entries
    # None may expire while they are issued (the writes would prune them along the way).
    lifetime_s = 4.0
    start = time.monotonic()
    limit = asyncio.Semaphore(16)

    async def issue_one(ttl_ms: int) -> None:
        async with limit:
            await store.issue(await store.new_id("big"), _draft("big"), DIGEST, ttl_ms, 0)

    await asyncio.gather(*(issue_one(int(lifetime_s * 1000)) for _ in range(expiring)))
    await issue_one(60_000)
    assert time.monotonic() - start < lifetime_s, "issuing took longer than the tokens live"
    await asyncio.sleep(lifetime_s + 0.2)  # every one was issued before now: all expired then
    counts = []
    for _ in range(30):
        await store.issue(await store.new_id("big"), _draft("big"), DIGEST, 60_000, 0)
        counts.append(len(token_fields(await user_hashes(redis))))
        if counts[-1] == len(counts) + 1:
            break
    live = len(counts) + 1
    assert counts[-1] == live  # every expired token was pruned in the end ...
    if backend != "embedded":  # fakeredis's HSCAN does not count as Redis's does
        assert len(counts) >= 3  # ... over several writes, none of which read the whole hash
        steps = [a - b for a, b in zip([expiring + 1, *counts], counts, strict=False)]
        assert max(steps) <= 8 * PRUNE_BUDGET, steps  # COUNT is a hint: a bucket may hold more
    assert [r.user_id for r in await store.list_user("big")] == ["big"] * live


async def test_a_second_revocation_during_a_sweep_keeps_its_own_sweep(client: Client) -> None:
    store = _store(client)
    first = await store.revoke_app("app", 60_000)
    second = await store.revoke_app("app", 60_000)  # while the first sweep runs
    assert second > first
    assert await store.apps.finish_sweep("app", first) is False  # the first sweep ends ...
    assert await store.apps.pending_sweeps() == {"app": second}  # ... the second stays queued
    assert await store.apps.finish_sweep("app", second) is True
    assert await store.apps.pending_sweeps() == {}


# --- the layout version ---------------------------------------------------------------------


async def test_a_new_keyspace_is_marked_with_the_layout(client: Client, redis: AnyRedis) -> None:
    await issue(client)
    assert await cast(Any, redis).hget("ts:meta", "layout") == str(LAYOUT_VERSION).encode()


@pytest.mark.parametrize(
    ("meta", "says"), [({"tag_key": "k"}, "layout 1"), ({"layout": "3"}, "newer")]
)
async def test_a_keyspace_of_another_layout_is_refused(
    redis_server: RedisServer, clients_file: Path, meta: dict[str, str], says: str
) -> None:
    redis_server.flush()
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.hset("ts:meta", mapping=meta)
        admin.hset("ts:t:{0123456789abcdef}:0123456789abcdef", "u", "alice")  # a layout-1 token
        store = TokenStore(Settings(redis_url=redis_server.url, clients_file=str(clients_file)))
        try:
            with pytest.raises(LayoutMismatch, match=says):
                await store.ping()
            with pytest.raises(LayoutMismatch):  # every call, not only the first
                await store.read(TokenId("0123456789abcdef", "0123456789abcdef"))
        finally:
            await store.close()
        assert admin.hgetall("ts:meta") == {k.encode(): v.encode() for k, v in meta.items()}


def test_the_process_refuses_to_start_on_another_layout(
    redis_server: RedisServer, clients_file: Path
) -> None:
    from redis_servers import free_port

    redis_server.flush()
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.hset("ts:meta", "tag_key", "k")  # what tokenstore 0.1 leaves
    env = {
        "PATH": "/usr/bin:/bin",
        "TOKENSTORE_REDIS_URL": redis_server.url,
        "TOKENSTORE_CLIENTS_FILE": str(clients_file),
        "TOKENSTORE_PORT": str(free_port()),
        "TOKENSTORE_METRICS_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "layout 1" in done.stderr and "TOKENSTORE_KEY_PREFIX" in done.stderr


async def test_the_app_starts_against_its_own_layout(
    aiohttp_client: Any, settings: Settings
) -> None:
    first = await aiohttp_client(create_app(settings))
    await first.close()
    second = await aiohttp_client(create_app(settings))  # the marked keyspace is accepted
    assert (await second.get("/readyz")).status == 200


# --- a Redis that may evict keys, and a lost meta key -----------------------------------------


@pytest.fixture(scope="module")
def evicting_redis() -> Any:
    with RedisServer(extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        yield server


async def test_an_evicting_redis_is_refused_unless_allowed(
    evicting_redis: RedisServer, clients_file: Path, aiohttp_client: Any
) -> None:
    settings = Settings(redis_url=evicting_redis.url, clients_file=str(clients_file))
    store = TokenStore(settings)
    try:
        with pytest.raises(UnsafeRedis, match="allkeys-lru"):
            await store.ping()
    finally:
        await store.close()
    runner = web.AppRunner(create_app(settings))
    with pytest.raises(UnsafeRedis):  # the app does not start
        await runner.setup()
    await runner.cleanup()
    allowed = await aiohttp_client(create_app(replace(settings, allow_evicting_redis=True)))
    assert (await allowed.get("/readyz")).status == 200


async def test_readiness_follows_the_eviction_policy(client: Client, backend: str) -> None:
    if backend != "standalone":
        pytest.skip("one server is enough: the policy is read per primary on a Cluster too")
    assert (await client.get("/readyz")).status == 200
    redis_client = await _store(client).client()
    await cast(Any, redis_client).config_set("maxmemory-policy", "volatile-ttl")
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["status"] == "unsafe_redis"
    finally:
        await cast(Any, redis_client).config_set("maxmemory-policy", "noeviction")
    assert (await client.get("/readyz")).status == 200


async def test_tokens_without_their_meta_key_are_refused(
    redis_server: RedisServer, clients_file: Path
) -> None:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, clients_file=str(clients_file))
    first = TokenStore(settings)
    try:
        await first.issue(await first.new_id("alice"), _draft(), DIGEST, 60_000, 0)
    finally:
        await first.close()
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.delete("ts:meta")  # as an evicting Redis (or an operator) could
        store = TokenStore(settings)
        try:
            with pytest.raises(KeyspaceRefused, match="ts:meta is missing"):
                await store.ping()
        finally:
            await store.close()
        assert admin.exists("ts:meta") == 0  # no new tag key was made over the old tokens


async def test_a_redis_that_lost_its_data_gets_the_meta_key_back(
    redis_server: RedisServer, clients_file: Path, aiohttp_client: Any
) -> None:
    """A Redis restarted empty under a running process: /readyz writes the meta key back with
    the process's tag key, so a process started afterwards serves the tokens issued since."""
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, clients_file=str(clients_file))
    running: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    await issue(running, "alice")
    redis_server.flush()  # as a restart without persistence would leave it
    since = await issue(running, "alice")  # still issued under the process's tag key
    assert (await running.get("/readyz")).status == 200
    later = TokenStore(settings)
    try:
        assert [r.id for r in await later.list_user("alice")] == [since["id"]]
    finally:
        await later.close()
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.hset("ts:meta", "tag_key", "made by another process")
    response = await running.get("/readyz")
    assert response.status == 503  # its user tags no longer match the keyspace's
