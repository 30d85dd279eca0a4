"""A Redis Cluster with replicas losing a master under load, as a real service process sees it.

Each test starts its own Cluster (3 masters, 3 replicas) and service, issues tokens on every
shard, revokes some (one by one, and a whole app: its watermark copies), then loads the
service while a master is killed (a failover) or stopped (SIGSTOP: neither dead nor
answering). Whatever happens: no 500, every 503 says Retry-After, no revoked token is ever
active; tokens of the other shards keep answering promptly; everything recovers by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fault_load import (
    Answer,
    Load,
    issue_on_every_shard,
    median_seconds,
    shard_load,
    statuses,
    summary,
)
from redis_servers import RedisCluster
from service_process import ServiceProcess

pytestmark = pytest.mark.slow

SETTINGS = {"TOKENSTORE_REDIS_TIMEOUT": "1", "TOKENSTORE_READ_TIMEOUT": "0.5"}
# Loose bounds (2 shared cores, other suites running): the bugs they catch are ~2 s and 500s.
PROMPT_SECONDS = 0.5
RECOVERY_SECONDS = 20.0


@pytest.fixture
def cluster_with_replicas(request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    node_timeout_ms: int = getattr(request, "param", 2000)
    # As deploy/README.md recommends: a master lost leaves the other masters serving their
    # slots (by default every node answers CLUSTERDOWN until a replica is promoted).
    coverage = ["--cluster-require-full-coverage", "no"]
    with RedisCluster(replicas=1, node_timeout_ms=node_timeout_ms, extra_args=coverage) as cluster:
        yield cluster


@pytest.fixture
async def service(
    cluster_with_replicas: RedisCluster, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    settings = {"TOKENSTORE_REDIS_URL": cluster_with_replicas.url, **SETTINGS}
    with ServiceProcess(tmp_path, settings) as process:
        await process.wait_ready(within=30)
        yield process


def _assert_never_500_nor_revoked_active(load: Load, service: ServiceProcess) -> None:
    errors = [line.get("exc", line["msg"]) for line in service.lines() if line["level"] == "ERROR"]
    for answer in load.answers:
        assert answer.status in (200, 201, 503), (summary(load), errors)
        if answer.status == 503 and answer.kind != "readyz":
            assert answer.retry_after == "1", answer
    revoked = load.of("revoked")
    assert revoked, summary(load)
    assert all(a.status == 503 or a.body == {"active": False} for a in revoked)


def _assert_prompt(answers: list[Answer], at_least: int, load: Load) -> None:
    """Enough answers, nearly all 200 (a handful of 503s is tolerated: a connection closed
    by a slot map reload), and promptly."""
    ok = [a for a in answers if a.status == 200]
    assert len(ok) >= at_least and len(ok) >= 0.9 * len(answers), summary(load)
    assert median_seconds(ok) < PROMPT_SECONDS, (median_seconds(ok), summary(load))


async def _wait_recovered(load: Load, kind: str, since: float) -> float:
    """When the first call of ``kind`` started after ``since`` answered 2xx."""
    deadline = since + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        recovered = load.first_ok_after(kind, since)
        if recovered is not None:
            return recovered
        await asyncio.sleep(0.1)
    raise AssertionError(f"{kind} not recovered in {RECOVERY_SECONDS} s: {summary(load)}")


async def test_a_killed_master_fails_over_without_500_nor_stall(
    cluster_with_replicas: RedisCluster, service: ServiceProcess
) -> None:
    cluster = cluster_with_replicas
    tokens_ = await issue_on_every_shard(cluster, service.url)
    victim = cluster.masters()[0]
    load = shard_load(service.url, tokens_, victim)
    try:
        await asyncio.sleep(1.5)
        killed_at = time.monotonic()
        cluster.kill(victim)
        await asyncio.sleep(0.5)  # calls begun before the kill may still answer 200
        recovered_at = await _wait_recovered(load, "victim", killed_at + 0.5)
        await asyncio.sleep(1.5)
        end = time.monotonic()
    finally:
        await load.stop()
    _assert_never_500_nor_revoked_active(load, service)
    # The failover took seconds (node timeout 2 s, then an election); meanwhile the other
    # shards' tokens kept answering, promptly.
    assert recovered_at - killed_at > 1.0, summary(load)
    _assert_prompt(load.of("healthy", killed_at, recovered_at), 20, load)
    # Recovered: the promoted replica serves the victim's tokens; issues and probes work.
    settled = end - 1.0
    for kind in ("victim", "healthy", "issue", "readyz"):
        late = load.of(kind, settled)
        assert late and all(200 <= a.status < 300 for a in late), (kind, statuses(late))


@pytest.mark.parametrize("cluster_with_replicas", [5000], indirect=True)  # no failover
async def test_a_stopped_master_delays_only_its_own_tokens(
    cluster_with_replicas: RedisCluster, service: ServiceProcess
) -> None:
    cluster = cluster_with_replicas
    tokens_ = await issue_on_every_shard(cluster, service.url)
    victim = cluster.masters()[0]
    load = shard_load(service.url, tokens_, victim)
    try:
        await asyncio.sleep(1.5)
        stopped_at = time.monotonic()
        cluster.pause(victim)
        await asyncio.sleep(3.0)
        resumed_at = time.monotonic()
        cluster.resume(victim)
        recovered_at = await _wait_recovered(load, "victim", resumed_at)
        await asyncio.sleep(1.5)
        end = time.monotonic()
    finally:
        cluster.resume(victim)
        await load.stop()
    _assert_never_500_nor_revoked_active(load, service)
    _assert_prompt(load.of("healthy", stopped_at, resumed_at), 20, load)
    # The stopped master's tokens: 503 once their deadline (0.5 s) passed, never 200.
    stalled = load.of("victim", stopped_at + 0.1, resumed_at - 1.0)
    assert stalled and all(a.status == 503 for a in stalled), statuses(stalled)
    # Still ready: the other shards serve (a probe failing everywhere would take them down).
    # (Begun 1.5 s before the resume at the latest: a ping's deadline is 1 s.)
    probes = load.of("readyz", stopped_at + 0.1, resumed_at - 1.5)
    assert probes and all(a.status == 200 for a in probes), statuses(probes)
    assert any(a.body.get("unreachable_nodes") == 1 for a in probes), probes
    assert recovered_at - resumed_at < 5.0, summary(load)
    settled = end - 1.0
    for kind in ("victim", "healthy", "issue", "readyz"):
        late = load.of(kind, settled)
        assert late and all(200 <= a.status < 300 for a in late), (kind, statuses(late))
