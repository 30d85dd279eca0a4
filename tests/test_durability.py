"""Acknowledged revocations survive a crash: of Redis with ``appendfsync always``, of the
primary with ``TOKENSTORE_WAIT_REPLICAS``. Real redis-server and service processes on
loopback; Redis is SIGKILLed while revocations are under way."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from helpers import ADMIN_HEADERS, Client
from redis.asyncio import Redis as AsyncRedis
from redis_servers import HOST, RedisCluster, RedisServer
from service_process import ServiceProcess

from service.app import create_app
from service.durability import Durability
from service.errors import NotDurable
from service.redis_ops import Script
from service.settings import Settings

pytestmark = pytest.mark.slow

USERS = 30
TOKENS_PER_USER = 4
CONCURRENCY = 8
TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class Tokens:
    """Issued tokens by user; which revocations were acknowledged (2xx) before the crash."""

    by_user: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (id, value)
    acknowledged: set[str] = field(default_factory=set)  # token values
    statuses: list[int] = field(default_factory=list)

    def untouched(self) -> list[str]:
        """Values of the last token of each user: never revoked, so they must stay active."""
        return [tokens[-1][1] for tokens in self.by_user.values()]


async def issue_all(session: aiohttp.ClientSession, url: str) -> Tokens:
    tokens = Tokens()
    for n in range(USERS):
        user = f"user{n}"
        for k in range(TOKENS_PER_USER):
            body = {"user_id": user, "app_id": f"app{k % 2}"}
            async with session.post(f"{url}/v1/tokens", json=body) as response:
                assert response.status == 201
                issued = await response.json()
            tokens.by_user.setdefault(user, []).append((issued["id"], issued["token"]))
    return tokens


async def revoke_all(
    session: aiohttp.ClientSession,
    url: str,
    tokens: Tokens,
    faults: dict[int, Callable[[], None]],
) -> None:
    """As fast as possible, in CONCURRENCY lanes: even users lose their app0 tokens in one
    user revocation, odd users their first token by id; each user's last token (app1) is kept.
    ``faults[n]`` is called once n calls were answered."""
    calls: list[tuple[str, str, list[str]]] = []
    for n, (user, issued) in enumerate(tokens.by_user.items()):
        if n % 2 == 0:
            values = [value for i, (_, value) in enumerate(issued) if i % 2 == 0]
            calls.append(("DELETE", f"{url}/v1/users/{user}/tokens?app_id=app0", values))
        else:
            token_id, value = issued[0]
            calls.append(("DELETE", f"{url}/v1/tokens/{token_id}", [value]))
    queue: asyncio.Queue[tuple[str, str, list[str]]] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)

    async def lane() -> None:
        while not queue.empty():
            method, target, values = queue.get_nowait()
            try:
                async with session.request(method, target) as response:
                    await response.read()
                    tokens.statuses.append(response.status)
                    if 200 <= response.status < 300:
                        tokens.acknowledged.update(values)
            except aiohttp.ClientError:
                tokens.statuses.append(0)
            fault = faults.pop(len(tokens.statuses), None)
            if fault is not None:
                fault()

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


async def active(session: aiohttp.ClientSession, url: str, value: str) -> bool:
    async with session.post(f"{url}/v1/introspect", json={"token": value}) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return bool(answer["active"])


async def assert_kept(url: str, tokens: Tokens) -> None:
    """Every acknowledged revocation is still in effect; the kept tokens are still active (so
    the data did survive: an empty Redis would pass the first check alone)."""
    async with aiohttp.ClientSession(headers=ADMIN_HEADERS, timeout=TIMEOUT) as session:
        undone = [v for v in tokens.acknowledged if await active(session, url, v)]
        kept = [await active(session, url, v) for v in tokens.untouched()]
    assert undone == [], f"{len(undone)} acknowledged revocations undone"
    assert all(kept)


def wait_for(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


async def test_appendfsync_always_keeps_every_acknowledged_revocation_across_a_crash(
    tmp_path: Path,
) -> None:
    always = ("--appendonly", "yes", "--appendfsync", "always")
    with RedisServer(extra_args=always) as server:
        settings = {"TOKENSTORE_REDIS_URL": server.url, "TOKENSTORE_REDIS_TIMEOUT": "0.5"}
        with ServiceProcess(tmp_path, settings) as service:
            await service.wait_ready()
            async with aiohttp.ClientSession(headers=ADMIN_HEADERS, timeout=TIMEOUT) as session:
                tokens = await issue_all(session, service.url)
                # Mid-way, as a crash: the directory (AOF) stays.
                await revoke_all(session, service.url, tokens, {USERS // 3: server.kill})
            assert tokens.statuses.count(200) >= USERS // 3
            assert set(tokens.statuses) <= {200, 503}, tokens.statuses  # never a 500
            server.restart()
            await service.wait_ready()
            await assert_kept(service.url, tokens)


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[RedisServer, RedisServer]]:
    # No 5 s wait before the first full sync (repl-diskless-sync-delay).
    with RedisServer(extra_args=("--repl-diskless-sync-delay", "0")) as primary:
        replica_of = ("--replicaof", HOST, str(primary.port))
        with RedisServer(extra_args=replica_of) as replica:
            with redis.Redis(host=HOST, port=replica.port) as r:
                wait_for(lambda: r.info("replication")["master_link_status"] == "up")
            yield primary, replica


def in_sync(primary: RedisServer, replica: RedisServer) -> bool:
    with (
        redis.Redis(host=HOST, port=primary.port) as p,
        redis.Redis(host=HOST, port=replica.port) as r,
    ):
        return bool(p.dbsize() == r.dbsize() and p.info("replication")["connected_slaves"])


async def test_wait_replicas_keeps_every_acknowledged_revocation_when_the_primary_dies(
    primary_and_replica: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    primary, replica = primary_and_replica
    settings = {
        "TOKENSTORE_REDIS_URL": primary.url,
        "TOKENSTORE_REDIS_TIMEOUT": "1.0",
        "TOKENSTORE_WAIT_REPLICAS": "1",
        "TOKENSTORE_WAIT_TIMEOUT": "0.5",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ServiceProcess(tmp_path / "a", settings) as service:
        await service.wait_ready()
        async with aiohttp.ClientSession(headers=ADMIN_HEADERS, timeout=TIMEOUT) as session:
            tokens = await issue_all(session, service.url)
            wait_for(lambda: in_sync(primary, replica))  # issues are not waited for
            # A third in, the replica is cut off (as a partitioned one would be); a third later
            # the primary dies: what only it had is lost.
            assert replica.pid is not None
            replica_pid = replica.pid

            def cut_off_replica() -> None:
                os.kill(replica_pid, signal.SIGSTOP)  # it cannot reconnect
                with redis.Redis(host=HOST, port=primary.port) as p:
                    p.client_kill_filter(_type="replica")

            faults = {USERS // 3: cut_off_replica, 2 * USERS // 3: primary.kill}
            try:
                await revoke_all(session, service.url, tokens, faults)
            finally:
                os.kill(replica_pid, signal.SIGCONT)
    assert tokens.statuses.count(200) >= USERS // 3
    # Revocations while the replica was stopped were not confirmed: 503, not 200 (without
    # TOKENSTORE_WAIT_REPLICAS they are 200, and lost with the primary).
    assert 503 in tokens.statuses[USERS // 3 :]
    assert set(tokens.statuses) <= {200, 503}, tokens.statuses
    with redis.Redis(host=HOST, port=replica.port) as r:
        r.replicaof("NO", "ONE")  # promoted
    promoted = {"TOKENSTORE_REDIS_URL": replica.url}
    with ServiceProcess(tmp_path / "b", promoted) as service:
        await service.wait_ready()
        await assert_kept(service.url, tokens)


async def test_a_revocation_no_replica_confirms_answers_503_and_is_in_effect(
    primary_and_replica: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    primary, replica = primary_and_replica
    settings = {
        "TOKENSTORE_REDIS_URL": primary.url,
        "TOKENSTORE_WAIT_REPLICAS": "1",
        "TOKENSTORE_WAIT_TIMEOUT": "0.3",
    }
    with ServiceProcess(tmp_path, settings) as service:
        await service.wait_ready()
        async with aiohttp.ClientSession(headers=ADMIN_HEADERS, timeout=TIMEOUT) as session:
            tokens = await issue_all(session, service.url)
            (first_id, first), (second_id, second), *_ = tokens.by_user["user0"]
            async with session.delete(f"{service.url}/v1/tokens/{first_id}") as response:
                assert response.status == 200  # the replica confirms
            assert replica.pid is not None
            os.kill(replica.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                async with session.delete(f"{service.url}/v1/tokens/{second_id}") as response:
                    assert response.status == 503
                    assert response.headers["Retry-After"] == "1"
                    assert (await response.json())["error"] == "not_durable"
                assert time.monotonic() - started < 2.0  # the WAIT timeout, not a hang
                # A retry finds nothing left to revoke, and is not confirmed either: the
                # replica still lacks the first attempt.
                async with session.delete(f"{service.url}/v1/tokens/{second_id}") as response:
                    assert response.status == 503
                async with session.delete(f"{service.url}/v1/users/user1/tokens") as response:
                    assert response.status == 503
                # In effect on the primary all the same, and on the feed.
                assert not await active(session, service.url, second)
                assert not await active(session, service.url, tokens.untouched()[1])
                async with session.get(f"{service.url}/v1/users/user0/events") as response:
                    events = (await response.json())["events"]
                assert {i for e in events for i in e["ids"]} == {first_id, second_id}
            finally:
                os.kill(replica.pid, signal.SIGCONT)
            async with session.delete(f"{service.url}/v1/users/user2/tokens") as response:
                assert response.status == 200
                assert not await active(session, service.url, first)


async def test_on_a_cluster_too_few_replicas_is_a_503_too(
    redis_cluster: RedisCluster, aiohttp_client: Any, clients_file: Path
) -> None:
    # The tests' Cluster has no replicas: WAIT 1 can never be met, on whichever node.
    redis_cluster.flush()
    settings = Settings(
        redis_url=redis_cluster.url,
        clients_file=str(clients_file),
        wait_replicas=1,
        wait_timeout=0.05,
    )
    client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    for n in range(6):  # users on several nodes
        issued = await (
            await client.post("/v1/tokens", json={"user_id": f"u{n}", "app_id": "web"})
        ).json()
        response = await client.delete(f"/v1/tokens/{issued['id']}")
        assert response.status == 503
        assert (await response.json())["error"] == "not_durable"
        introspected = await client.post("/v1/introspect", json={"token": issued["token"]})
        assert (await introspected.json()) == {"active": False}
    response = await client.delete("/v1/apps/web/tokens")  # the {w} slot's node
    assert response.status == 503


async def test_a_node_that_lost_its_scripts_still_confirms(
    primary_and_replica: tuple[RedisServer, RedisServer], aiohttp_client: Any, clients_file: Path
) -> None:
    primary, _replica = primary_and_replica
    settings = Settings(
        redis_url=primary.url, clients_file=str(clients_file), wait_replicas=1, wait_timeout=1.0
    )
    client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    issued = await (await client.post("/v1/tokens", json={"user_id": "u", "app_id": "w"})).json()
    with redis.Redis(host=HOST, port=primary.port) as r:
        r.script_flush()  # as after a restart or on a promoted replica: NOSCRIPT
    response = await client.delete(f"/v1/tokens/{issued['id']}")
    assert response.status == 200
    assert await response.json() == {"revoked": [issued["id"]]}


async def test_a_call_that_writes_nothing_still_waits_for_what_came_before(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    """A retry finds its token gone and writes nothing; WAIT right after a connection's own
    acknowledged write returns at once, whatever other connections wrote since. Redis 7.0
    moves the connection's offset on any script call (so this holds without the marker write
    too, measured); the marker makes it hold on servers that do not."""
    primary, replica = primary_and_replica
    durability = Durability(replicas=1, timeout_s=0.2)
    assert replica.pid is not None
    retry = AsyncRedis(host=HOST, port=primary.port, single_connection_client=True)
    try:
        no_op = Script(retry.register_script("return 1"))
        await no_op.load(retry)  # SCRIPT LOAD is replicated: this connection's last write
        assert await retry.wait(1, 2000) == 1  # ... and the replica has it
        with redis.Redis(host=HOST, port=primary.port) as writer:
            os.kill(replica.pid, signal.SIGSTOP)
            try:
                writer.set("revoked-elsewhere", "1")  # the first attempt, another connection
                reply, pending = await durability.run(retry, no_op, ["k{t}"], [], "mark{t}")
            finally:
                os.kill(replica.pid, signal.SIGCONT)
    finally:
        await retry.aclose()
    assert reply == 1
    assert isinstance(pending, NotDurable)
