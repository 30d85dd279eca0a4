"""Benchmark 1: introspection throughput of one service process vs a bare aiohttp handler.

``python -m bench.introspect [--rounds 5] [--duration 10] [--unbatched]``

Starts a redis-server, ``tokenstore serve`` (one process) and ``bench.bare`` (a fixed JSON
body, same uvloop/run_app process model), issues ~1000 live tokens through the API, then
loads each target in turn with the same wrk command (one thread, 50 connections, a Lua
script posting ``{"token": ...}`` to ``/v1/introspect``, rotating over the tokens, with an
``Authorization`` header). Rounds alternate the order of the targets; it prints each
round's req/s, the service/bare ratio per round and the medians.

Then the latency at half of the service's peak: wrk paced by its ``delay()`` hook (each
connection pauses a random time between a response and its next request, calibrated so the
whole run offers the target rate; latency excludes the pause). wrk2 is not in Debian.

``--variant 'LABEL:TOKENSTORE_X=y'`` adds a service process with other settings to the same
rounds, reported against the bare handler and the default service: e.g. auth on vs auth
off, once issue #3 has a switch. Every request carries an ``Authorization`` header for the
admin client the benchmark writes to ``TOKENSTORE_CLIENTS_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis_servers import free_port

from bench.api import Api
from bench.harness import (
    Credentials,
    HttpProcess,
    banner,
    machine,
    median,
    redis_server,
    say,
    service_process,
    spread,
    tree_cpu_seconds,
    write_clients_file,
)
from bench.workload import population

WRK_SCRIPT = Path(__file__).with_name("wrk") / "introspect.lua"
TOKEN_TTL = 6 * 3600
CALIBRATION_SECONDS = 3


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu: tuple[float, float, float]  # cores busy: target (with its children), redis, wrk

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Target:
    name: str
    process: HttpProcess
    authorization: str | None = None  # None: the admin client's Basic header
    peak: list[WrkResult] = field(default_factory=list)
    paced: list[WrkResult] = field(default_factory=list)
    paced_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Wrk:
    tokens_file: Path
    credentials: Credentials
    connections: int
    threads: int
    redis_pid: int

    def run(self, target: Target, seconds: float, pause_ms: float | None = None) -> WrkResult:
        argv = ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds:.0f}s"]
        argv += ["--timeout", "5s", "-s", str(WRK_SCRIPT), target.process.url + "/v1/introspect"]
        argv += [
            "--",
            str(self.tokens_file),
            target.authorization or self.credentials.authorization,
        ]
        env = dict(os.environ)
        env.pop("BENCH_PACE_MS", None)
        if pause_ms is not None:
            env["BENCH_PACE_MS"] = f"{pause_ms:.3f}"
        pids = (target.process.pid, self.redis_pid)
        cpu_before = [tree_cpu_seconds(pid) for pid in pids]
        wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False
        )
        wall = time.perf_counter() - started
        wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy = [(tree_cpu_seconds(pid) - b) / wall for pid, b in zip(pids, cpu_before, strict=True)]
        wrk_cpu = wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime
        wrk_cpu -= wrk_before.ru_stime
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
        raw = json.loads(lines[-1])
        errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
        return WrkResult(
            requests=raw["requests"],
            seconds=raw["duration_us"] / 1e6,
            errors=errors,
            p50_ms=raw["p50"] / 1000,
            p99_ms=raw["p99"] / 1000,
            mean_ms=raw["mean"] / 1000,
            cpu=(busy[0], busy[1], wrk_cpu / wall),
        )

    def calibrate(self, target: Target, rate: float, probes: int = 4) -> float:
        """The pause (ms per connection) at which a run offers ``rate`` req/s.

        A connection's period is its pause plus an overhead (the request's latency and wrk's
        millisecond timer slack); short probes measure the overhead and correct the pause.
        """
        period_ms = self.connections / rate * 1000
        pause_ms = period_ms
        for _ in range(probes):
            probe = self.run(target, CALIBRATION_SECONDS, pause_ms=pause_ms)
            if abs(probe.rate - rate) <= 0.03 * rate:
                break
            overhead_ms = self.connections / probe.rate * 1000 - pause_ms
            pause_ms = max(period_ms - overhead_ms, 0.0)
        return pause_ms


async def _prepare(service: HttpProcess, credentials: Credentials, count: int) -> list[str]:
    async with Api(service.url, credentials) as api:
        tokens = await api.issue_all(population(count, per_user=1, seed=7), TOKEN_TTL)
        if await api.active_count(tokens[:20]) != 20:
            raise RuntimeError("freshly issued tokens do not introspect active")
    return tokens


async def _still_active(service: HttpProcess, credentials: Credentials, tokens: list[str]) -> int:
    async with Api(service.url, credentials) as api:
        return await api.active_count(tokens)


def _rotate(targets: Sequence[Target], shift: int) -> list[Target]:
    shift %= len(targets)
    return [*targets[shift:], *targets[:shift]]


def _peak_rounds(targets: list[Target], wrk: Wrk, args: argparse.Namespace) -> list[float]:
    banner(f"peak throughput: wrk -t{wrk.threads} -c{wrk.connections} -d{args.duration}s")
    for target in targets:
        wrk.run(target, args.warmup)
    ratios = []
    for number in range(args.rounds):
        for target in _rotate(targets, number):
            target.peak.append(wrk.run(target, args.duration))
        service, bare = targets[0].peak[-1], targets[1].peak[-1]
        ratios.append(service.rate / bare.rate)
        row = "  ".join(f"{t.name} {t.peak[-1].rate:8,.0f}" for t in targets)
        say(f"  round {number + 1}: {row}   service/bare {ratios[-1]:.2f}x")
    return ratios


def _paced_rounds(targets: list[Target], wrk: Wrk, args: argparse.Namespace) -> None:
    rate = median([r.rate for r in targets[0].peak]) / 2
    banner(f"latency at half of the service's peak: {rate:,.0f} req/s offered (wrk, paced)")
    for target in targets:
        own_peak = median([r.rate for r in target.peak])
        # A target that cannot take the service's half-peak comfortably gets half its own.
        target.paced_rate = rate if own_peak >= 1.5 * rate else own_peak / 2
    pauses = {t.name: wrk.calibrate(t, t.paced_rate) for t in targets}
    for number in range(args.latency_rounds):
        for target in _rotate(targets, number):
            result = wrk.run(target, args.duration, pause_ms=pauses[target.name])
            target.paced.append(result)
            say(
                f"  round {number + 1}: {target.name:20s} offered {target.paced_rate:7,.0f}"
                f"  got {result.rate:7,.0f} req/s  p50 {result.p50_ms:.2f} ms"
                f"  p99 {result.p99_ms:.2f} ms  (pause {pauses[target.name]:.2f} ms/conn)"
            )


def _report(targets: list[Target], ratios: list[float]) -> None:
    banner("summary (median of rounds; min-max in brackets)")
    service, bare = (median([r.rate for r in t.peak]) for t in targets[:2])
    for target in targets:
        rates = [r.rate for r in target.peak]
        errors = sum(r.errors for r in target.peak + target.paced)
        say(f"  {target.name}:")
        p50, p99 = median([r.p50_ms for r in target.peak]), median([r.p99_ms for r in target.peak])
        say(f"    peak req/s            {spread(rates, '{:,.0f}')}")
        say(f"    vs bare               {median(rates) / bare:.2f}x")
        if target is not targets[0] and target is not targets[1]:
            say(f"    vs service            {median(rates) / service:.2f}x")
        say(f"    at peak p50 / p99     {p50:.2f} / {p99:.2f} ms")
        cpu = [median([r.cpu[i] for r in target.peak]) for i in range(3)]
        say(
            f"    CPU at peak (cores)   process {cpu[0]:.2f}, redis-server {cpu[1]:.2f},"
            f" wrk {cpu[2]:.2f}"
        )
        if target.paced:
            say(
                f"    at {target.paced_rate:,.0f} req/s p50/p99 "
                f"{median([r.p50_ms for r in target.paced]):.2f} / "
                f"{median([r.p99_ms for r in target.paced]):.2f} ms "
                f"(achieved {median([r.rate for r in target.paced]):,.0f} req/s)"
            )
        if errors:
            say(f"    !! {errors} wrk errors (non-2xx, timeouts, socket errors)")
    say(f"  service/bare ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    say(f"  service/bare ratio, median: {median(ratios):.2f}x   (target >= 0.60x)")


def run(args: argparse.Namespace) -> None:
    say(f"bench.introspect: {machine()}, loopback only")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        credentials = write_clients_file(workdir)
        server = stack.enter_context(redis_server())
        service = stack.enter_context(service_process(server.url, credentials))
        bare_port = free_port()
        bare = HttpProcess("bare", [sys.executable, "-m", "bench.bare", str(bare_port)], bare_port)
        targets = [Target("service", service), Target("bare aiohttp", stack.enter_context(bare))]
        for label, env in args.variant:
            variant = service_process(
                server.url, credentials, name=label.replace(" ", "-"), extra_env=env
            )
            targets.append(Target(label, stack.enter_context(variant)))
        if args.unbatched:
            unbatched = service_process(
                server.url,
                credentials,
                name="unbatched",
                argv=[sys.executable, "-m", "bench.unbatched"],
            )
            targets.append(Target("service unbatched", stack.enter_context(unbatched)))
        tokens = asyncio.run(_prepare(service, credentials, args.tokens))
        tokens_file = workdir / "tokens.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        say(f"{len(tokens)} live tokens issued through POST /v1/tokens; redis {server.url}")
        assert server.pid is not None
        wrk = Wrk(tokens_file, credentials, args.connections, args.threads, server.pid)
        ratios = _peak_rounds(targets, wrk, args)
        if args.latency_rounds:
            _paced_rounds(targets, wrk, args)
        active = asyncio.run(_still_active(service, credentials, tokens[:50]))
        if active != 50:
            raise RuntimeError(f"only {active}/50 sample tokens still introspect active")
        _report(targets, ratios)


def _variant(text: str) -> tuple[str, dict[str, str]]:
    label, _, settings = text.partition(":")
    pairs = [item.partition("=") for item in settings.split(",") if item]
    if not label or not pairs or any(not name or not eq for name, eq, _ in pairs):
        raise argparse.ArgumentTypeError("expected LABEL:VAR=VALUE[,VAR=VALUE...]")
    return label, {name: value for name, _, value in pairs}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.introspect", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="peak rounds (default 5)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--latency-rounds", type=int, default=3, help="paced rounds (0: none)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=1000, help="live tokens to rotate over")
    parser.add_argument(
        "--unbatched", action="store_true", help="also measure the service without batching"
    )
    parser.add_argument(
        "--variant",
        type=_variant,
        action="append",
        default=[],
        metavar="LABEL:VAR=VALUE[,VAR=VALUE]",
        help="also measure a service process with these extra TOKENSTORE_* settings, e.g."
        " 'auth off:TOKENSTORE_AUTH=off' (repeatable)",
    )
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 1 <= args.duration <= 300 and 0 <= args.warmup <= 60):
        parser.error("rounds 1-50, duration 1-300 s, warmup 0-60 s")
    if not (0 <= args.latency_rounds <= 20 and 1 <= args.tokens <= 100_000):
        parser.error("latency-rounds 0-20, tokens 1-100000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
