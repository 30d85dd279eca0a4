"""Sessions: introspection of tokens with an idle lifetime vs plain ones, and rotation latency.

``python -m bench.sessions [--rounds 5] [--duration 10] [--resolution 5]``

One redis-server, one ``tokenstore serve`` process (``TOKENSTORE_IDLE_RESOLUTION`` set to
``--resolution``, so that with 2,000 tokens the recording of uses is busy: each token's use is
written once per resolution, 400 writes/s at 5 s). Two sets of tokens are issued with the same
specs, one with ``idle_ttl`` and one without; the same wrk command (as ``bench.introspect``)
loads each set in alternating rounds against the same process: req/s per round, the
idle/plain ratio per round and its median (target >= 0.9x).

Then rotation: 1 and ``--rotators`` concurrent holders each rotate their own login in a closed
loop for ``--duration`` seconds (every answer's latency kept), alone and while wrk loads
introspection of the plain tokens: rotations/s and p50 / p99 of ``POST /v1/tokens/rotate``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.harness import (
    Credentials,
    HttpProcess,
    banner,
    machine,
    redis_server,
    say,
    service_process,
    spread,
    write_clients_file,
)
from bench.introspect import Target, Wrk, WrkResult
from bench.workload import population

TOKEN_TTL = 6 * 3600
IDLE_TTL = 3600


async def _issue(url: str, credentials: Credentials, count: int, idle_ttl: int) -> list[str]:
    limit = asyncio.Semaphore(32)
    extra = {"idle_ttl": idle_ttl} if idle_ttl else {}
    async with aiohttp.ClientSession(url, headers=credentials.headers) as session:

        async def one(body: dict[str, object]) -> str:
            async with limit, session.post("/v1/tokens", json={**body, **extra}) as response:
                if response.status != 201:
                    raise RuntimeError(f"issue: {response.status} {await response.text()}")
                return str((await response.json())["token"])

        specs = population(count, per_user=1, seed=11 if idle_ttl else 7)
        return list(await asyncio.gather(*(one({**s.body(), "ttl": TOKEN_TTL}) for s in specs)))


async def _rotations(
    url: str, credentials: Credentials, clients: int, seconds: float
) -> list[float]:
    """Latencies (ms) of rotations by ``clients`` concurrent holders, each of its own login."""
    logins = await _issue(url, credentials, clients, 0)
    latencies: list[float] = []
    async with aiohttp.ClientSession(url) as session:

        async def holder(token: str) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post("/v1/tokens/rotate", json={"token": token}) as response:
                    body = await response.json()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status != 201:
                    raise RuntimeError(f"rotate: {response.status} {body}")
                token = body["token"]

        await asyncio.gather(*map(holder, logins))
    return latencies


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _introspection_rounds(
    service: HttpProcess, wrk_plain: Wrk, wrk_idle: Wrk, args: argparse.Namespace
) -> None:
    banner(f"introspection, idle_ttl vs plain: wrk -c{args.connections} -d{args.duration}s")
    target = Target("service", service)
    wrk_plain.run(target, args.warmup)
    wrk_idle.run(target, args.warmup)
    plain_rates, idle_rates, ratios, cost_ratios = [], [], [], []
    costs: dict[str, list[float]] = {"plain": [], "idle": []}
    for number in range(args.rounds):
        order = [("plain", wrk_plain), ("idle", wrk_idle)]
        results = {}
        for name, wrk in order if number % 2 == 0 else order[::-1]:
            results[name] = wrk.run(target, args.duration)
            costs[name].append(_cpu_us(results[name]))
        plain_rates.append(results["plain"].rate)
        idle_rates.append(results["idle"].rate)
        ratios.append(idle_rates[-1] / plain_rates[-1])
        cost_ratios.append(costs["idle"][-1] / costs["plain"][-1])
        errors = results["plain"].errors + results["idle"].errors
        say(
            f"  round {number + 1}: plain {plain_rates[-1]:7,.0f}  idle {idle_rates[-1]:7,.0f}"
            f" req/s  idle/plain {ratios[-1]:.2f}x   CPU/request (service + redis)"
            f" {costs['plain'][-1]:.0f} / {costs['idle'][-1]:.0f} us"
            + (f"  !! {errors} errors" if errors else "")
        )
    rates = f"plain {spread(plain_rates, '{:,.0f}')}, idle {spread(idle_rates, '{:,.0f}')}"
    say(f"  req/s: {rates}")
    say(f"  idle/plain req/s ratio: {spread(ratios, '{:.2f}')}   (target >= 0.90x)")
    cost = f"plain {spread(costs['plain'])}, idle {spread(costs['idle'])}"
    say(f"  CPU us per request: {cost}; idle/plain {spread(cost_ratios, '{:.2f}')}")


def _cpu_us(result: WrkResult) -> float:
    """CPU time of the service process and redis-server per request answered (us): steadier
    than req/s on a shared machine, where others' load takes the cores."""
    return (result.cpu[0] + result.cpu[1]) / result.rate * 1e6


def _rotation_rounds(
    service: HttpProcess, credentials: Credentials, wrk_plain: Wrk, args: argparse.Namespace
) -> None:
    banner(f"rotation latency: closed loops of {args.duration}s, each holder its own login")
    for holders in (1, args.rotators):
        latencies = asyncio.run(_rotations(service.url, credentials, holders, args.duration))
        _say_latency(f"{holders:2d} holder(s), alone", latencies, args.duration)
    for holders in (1, args.rotators):
        loaded: list[float] = []

        async def with_load(holders: int = holders, loaded: list[float] = loaded) -> None:
            load = asyncio.to_thread(wrk_plain.run, Target("service", service), args.duration + 2)
            rotations = _rotations(service.url, credentials, holders, args.duration)
            loaded.extend((await asyncio.gather(load, rotations))[1])

        asyncio.run(with_load())
        label = f"{holders:2d} holder(s) + introspection load (wrk -c{args.connections})"
        _say_latency(label, loaded, args.duration)


def _say_latency(label: str, latencies: list[float], seconds: float) -> None:
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    say(
        f"  {label}: {len(latencies) / seconds:,.0f} rotations/s,"
        f" p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.1f} ms"
    )


def run(args: argparse.Namespace) -> None:
    say(f"bench.sessions: {machine()}, loopback only")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        credentials = write_clients_file(workdir)
        server = stack.enter_context(redis_server())
        env = {"TOKENSTORE_IDLE_RESOLUTION": str(args.resolution)}
        service = stack.enter_context(service_process(server.url, credentials, extra_env=env))
        plain = asyncio.run(_issue(service.url, credentials, args.tokens, 0))
        idle = asyncio.run(_issue(service.url, credentials, args.tokens, IDLE_TTL))
        files = {}
        for name, tokens in [("plain", plain), ("idle", idle)]:
            files[name] = workdir / f"{name}.txt"
            files[name].write_text("\n".join(tokens) + "\n")
        say(f"{args.tokens} plain and {args.tokens} idle_ttl={IDLE_TTL} tokens; resolution "
            f"{args.resolution} s; redis {server.url}")  # fmt: skip
        time.sleep(args.resolution)  # every idle token's first use is then one to record
        assert server.pid is not None
        wrks = [
            Wrk(files[n], credentials, args.connections, 1, server.pid) for n in ("plain", "idle")
        ]
        _introspection_rounds(service, wrks[0], wrks[1], args)
        _rotation_rounds(service, credentials, wrks[0], args)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="introspection rounds (5)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up (3)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per set (2000)")
    parser.add_argument("--resolution", type=int, default=5, help="idle resolution s (5)")
    parser.add_argument("--rotators", type=int, default=16, help="concurrent rotators (16)")
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 1 <= args.duration <= 300 and args.tokens >= 1):
        parser.error("rounds 1-50, duration 1-300 s, tokens >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
