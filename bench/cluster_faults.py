"""Issue #10 items 2 and 3: a Redis Cluster master killed, then one stopped, under load.

``python -m bench.cluster_faults [--full-coverage]``

For each fault, a new Cluster (3 masters, 3 replicas, ``cluster-require-full-coverage no`` as
deploy/README.md recommends, unless ``--full-coverage``) and one ``tokenstore serve``, the
load of ``tests/test_cluster_faults.py`` (introspections of the victim master's tokens, of the
other masters' and of revoked tokens, issues, ``/readyz``; each kind its own workers). Prints,
for introspections of the other masters' tokens, the rate and median latency before and
during the fault; the victim's answers during the fault; the time to recover; every status
by kind. Kill: node timeout 2 s, SIGKILL, until the promoted replica answers. Stop: node
timeout 5 s (no failover), SIGSTOP for 3 s, then SIGCONT.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fault_load import Load, issue_on_every_shard, median_seconds, shard_load, statuses, summary
from redis_servers import RedisCluster
from service_process import ServiceProcess

from bench.harness import banner, machine, say

SETTINGS = {"TOKENSTORE_REDIS_TIMEOUT": "1", "TOKENSTORE_READ_TIMEOUT": "0.5"}
BASELINE_SECONDS = 3.0
STOP_SECONDS = 3.0


async def _recovered(load: Load, since: float, within: float = 30.0) -> float | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        moment = load.first_ok_after("victim", since)
        if moment is not None:
            return moment
        await asyncio.sleep(0.05)
    return None


async def _fault(kill: bool, extra_args: Sequence[str]) -> None:
    banner("SIGKILL one master (node timeout 2 s)" if kill else "SIGSTOP one master for 3 s")
    node_timeout = 2000 if kill else 5000
    with RedisCluster(replicas=1, node_timeout_ms=node_timeout, extra_args=extra_args) as cluster:
        workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        settings = {"TOKENSTORE_REDIS_URL": cluster.url, **SETTINGS}
        with ServiceProcess(workdir, settings) as service:
            await service.wait_ready(within=30)
            tokens = await issue_on_every_shard(cluster, service.url)
            victim = cluster.masters()[0]
            load = shard_load(service.url, tokens, victim)
            await asyncio.sleep(BASELINE_SECONDS)
            began = time.monotonic()
            if kill:
                cluster.kill(victim)
                await asyncio.sleep(0.5)
                recovered = await _recovered(load, began + 0.5)
                ended = recovered or time.monotonic()
            else:
                cluster.pause(victim)
                await asyncio.sleep(STOP_SECONDS)
                ended = time.monotonic()
                cluster.resume(victim)
                recovered = await _recovered(load, ended)
            await asyncio.sleep(1.5)
            await load.stop()
    _report(load, began - BASELINE_SECONDS, began, ended, recovered)


def _report(load: Load, start: float, began: float, ended: float, recovered: float | None) -> None:
    before, during = load.of("healthy", start, began), load.of("healthy", began, ended)
    ok = [a for a in during if a.status == 200]
    say(f"  fault lasted {ended - began:.2f} s")
    say(
        f"  other masters' tokens, before: {len(before) / (began - start):,.0f}/s, median "
        f"{median_seconds(before) * 1000:.1f} ms"
    )
    median = f"{median_seconds(ok) * 1000:.1f} ms" if ok else "-"
    say(
        f"  other masters' tokens, during: {len(during) / (ended - began):,.0f}/s, "
        f"{len(ok)} of {len(during)} answered 200, median {median}"
    )
    victim = load.of("victim", began + 0.1, ended)
    victim_median = f"{median_seconds(victim) * 1000:.0f} ms" if victim else "-"
    say(f"  victim's tokens, during: {statuses(victim)}, median {victim_median}")
    since = "the kill" if recovered is not None and recovered <= ended else "SIGCONT"
    anchor = began if since == "the kill" else ended
    after = f"{recovered - anchor:.2f} s after {since}" if recovered is not None else "never"
    say(f"  victim's tokens answer 200 again: {after}")
    say(f"  statuses: {summary(load)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_faults", description=__doc__)
    parser.add_argument(
        "--full-coverage", action="store_true", help="keep Redis's cluster-require-full-coverage"
    )
    args = parser.parse_args(argv)
    extra = [] if args.full_coverage else ["--cluster-require-full-coverage", "no"]
    say(f"bench.cluster_faults: {machine()}, loopback only")
    asyncio.run(_fault(True, extra))
    asyncio.run(_fault(False, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
