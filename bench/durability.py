"""What durable revocations cost: revocation latency and throughput, three ways side by side.

``python -m bench.durability [--rounds 3] [--sequential 200] [--concurrent 1000] [--lanes 16]``

- ``everysec``: Redis ``appendonly yes``, ``appendfsync everysec`` (as shipped), no WAIT;
- ``always``: the same Redis with ``appendfsync always`` (every write fsynced before Redis
  answers), no WAIT;
- ``wait1``: an ``everysec`` primary with one replica, and ``TOKENSTORE_WAIT_REPLICAS=1``.

Each setup is its own redis-server(s) and ``tokenstore serve`` (one process), all running at
once; each round measures every setup in turn (the order rotating), on tokens issued for it:
``--sequential`` revocations by id one after another (latency, from sending to the whole
answer read), then ``--concurrent`` revocations by id over ``--lanes`` connections
(throughput). The AOF is on the disk of ``$TMPDIR`` (it says which filesystem: on a tmpfs,
fsync costs nothing and ``always`` looks free).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from redis_servers import HOST

from bench.harness import (
    Credentials,
    banner,
    machine,
    median,
    redis_server,
    say,
    service_process,
    spread,
    write_clients_file,
)

EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")
ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class Setup:
    name: str
    url: str
    latencies_ms: list[float] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    failures: int = 0


@contextlib.contextmanager
def setups(credentials: Credentials) -> Iterator[list[Setup]]:
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(redis_server(*EVERYSEC))
        always = stack.enter_context(redis_server(*ALWAYS))
        primary = stack.enter_context(redis_server(*EVERYSEC, "--repl-diskless-sync-delay", "0"))
        stack.enter_context(redis_server(*EVERYSEC, "--replicaof", HOST, str(primary.port)))
        wait = {"TOKENSTORE_WAIT_REPLICAS": "1", "TOKENSTORE_WAIT_TIMEOUT": "1.0"}
        services = [
            ("everysec", service_process(plain.url, credentials, name="everysec")),
            ("always", service_process(always.url, credentials, name="always")),
            ("wait1", service_process(primary.url, credentials, name="wait1", extra_env=wait)),
        ]
        result = []
        for name, process in services:
            stack.enter_context(process)
            result.append(Setup(name, process.url))
        yield result


async def issue(session: aiohttp.ClientSession, url: str, count: int, tag: str) -> list[str]:
    ids = []
    for n in range(count):
        body = {"user_id": f"{tag}-{n % 50}", "app_id": "bench"}
        async with session.post(f"{url}/v1/tokens", json=body) as response:
            assert response.status == 201, await response.text()
            ids.append((await response.json())["id"])
    return ids


async def revoke(session: aiohttp.ClientSession, url: str, token_id: str) -> bool:
    async with session.delete(f"{url}/v1/tokens/{token_id}") as response:
        await response.read()
        return response.status == 200


async def measure(
    session: aiohttp.ClientSession, setup: Setup, args: argparse.Namespace, tag: str
) -> None:
    ids = await issue(session, setup.url, args.sequential, f"{tag}-s")
    await asyncio.sleep(0.2)  # the replica catches up with the issues (not waited for)
    for token_id in ids:
        started = time.perf_counter()
        ok = await revoke(session, setup.url, token_id)
        setup.latencies_ms.append((time.perf_counter() - started) * 1000)
        setup.failures += not ok
    ids = await issue(session, setup.url, args.concurrent, f"{tag}-c")
    await asyncio.sleep(0.2)
    queue = list(reversed(ids))

    async def lane() -> None:
        while queue:
            setup.failures += not await revoke(session, setup.url, queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(args.lanes)))
    setup.throughputs.append(args.concurrent / (time.perf_counter() - started))


def filesystem() -> str:
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        where = tempfile.gettempdir()
        out = subprocess.run(["df", "-T", where], capture_output=True, text=True, check=False)
        return f"{where} on {out.stdout.splitlines()[1].split()[1]}"
    return "?"


async def run(args: argparse.Namespace) -> None:
    banner("durability: revocation latency and throughput")
    say(f"{machine()}; AOF in {filesystem()}; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as directory:
        credentials = write_clients_file(Path(directory))
        with setups(credentials) as all_setups:
            connector = aiohttp.TCPConnector(limit=args.lanes)
            async with aiohttp.ClientSession(
                headers=credentials.headers, timeout=TIMEOUT, connector=connector
            ) as session:
                for round_ in range(args.rounds):
                    order = all_setups[round_ % 3 :] + all_setups[: round_ % 3]
                    for setup in order:
                        await measure(session, setup, args, f"r{round_}")
                    say(f"round {round_ + 1}: " + ", ".join(
                        f"{s.name} {s.throughputs[-1]:.0f}/s" for s in all_setups
                    ))  # fmt: skip
    base = median(all_setups[0].throughputs)
    say(f"\n{'setup':<10} {'p50 ms':>8} {'p99 ms':>8} {'revocations/s (rounds)':>32} {'vs':>6}")
    for s in all_setups:
        lat = sorted(s.latencies_ms)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        say(
            f"{s.name:<10} {median(lat):>8.2f} {p99:>8.2f} {spread(s.throughputs):>32} "
            f"{median(s.throughputs) / base:>5.2f}x" + (f"  {s.failures} failed" * bool(s.failures))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--lanes", type=int, default=16)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
