"""Side-by-side introspection throughput of service configurations, in one run.

The shared part of ``bench.auth_overhead`` and ``bench.workers``: one redis-server, one
clients file, 1,000 live tokens issued through the API, then the same wrk command as
``bench.introspect`` (``-t1 -c50``, ``bench/wrk/introspect.lua``) on every target in turn,
the order rotating each round. Prints each round's req/s and each target's ratio to the
first target (the reference), then medians with min-max of the rates and of the per-round
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import (
    Credentials,
    banner,
    machine,
    median,
    redis_server,
    say,
    spread,
    write_clients_file,
)
from bench.introspect import Target, Wrk, _prepare, _rotate, _still_active

# Builds the targets from (redis url, credentials, exit stack): the first one is the reference.
Targets = Callable[[str, Credentials, contextlib.ExitStack], list[Target]]


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=1000, help="live tokens to rotate over")
    return parser


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if not (1 <= args.rounds <= 50 and 1 <= args.duration <= 300 and 0 <= args.warmup <= 60):
        parser.error("rounds 1-50, duration 1-300 s, warmup 0-60 s")
    if not (1 <= args.tokens <= 100_000 and 1 <= args.connections <= 1000):
        parser.error("tokens 1-100000, connections 1-1000")
    return args


def run(title: str, build: Targets, args: argparse.Namespace, target_note: str = "") -> None:
    say(f"{title}: {machine()}, loopback only")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        credentials = write_clients_file(workdir)
        server = stack.enter_context(redis_server())
        targets = build(server.url, credentials, stack)
        tokens = asyncio.run(_prepare(targets[0].process, credentials, args.tokens))
        tokens_file = workdir / "tokens.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        say(f"{len(tokens)} live tokens issued through POST /v1/tokens; redis {server.url}")
        assert server.pid is not None
        wrk = Wrk(tokens_file, credentials, args.connections, args.threads, server.pid)
        ratios = _rounds(targets, wrk, args)
        active = asyncio.run(_still_active(targets[0].process, credentials, tokens[:50]))
        if active != 50:
            raise RuntimeError(f"only {active}/50 sample tokens still introspect active")
        _report(targets, ratios, target_note)


def _rounds(targets: list[Target], wrk: Wrk, args: argparse.Namespace) -> list[list[float]]:
    banner(f"peak throughput: wrk -t{wrk.threads} -c{wrk.connections} -d{args.duration}s")
    for target in targets:
        wrk.run(target, args.warmup)
    ratios: list[list[float]] = [[] for _ in targets]
    reference = targets[0]
    for number in range(args.rounds):
        for target in _rotate(targets, number):
            target.peak.append(wrk.run(target, args.duration))
        for index, target in enumerate(targets):
            ratios[index].append(target.peak[-1].rate / reference.peak[-1].rate)
        row = "  ".join(
            f"{t.name} {t.peak[-1].rate:,.0f}" + (f" ({r[-1]:.3f}x)" if i else "")
            for i, (t, r) in enumerate(zip(targets, ratios, strict=True))
        )
        say(f"  round {number + 1}: {row}")
    return ratios


def _report(targets: Sequence[Target], ratios: list[list[float]], note: str) -> None:
    banner(f"summary (median of rounds; min-max in brackets); ratios to {targets[0].name!r}")
    reference_rates = [r.rate for r in targets[0].peak]
    for target, target_ratios in zip(targets, ratios, strict=True):
        rates = [r.rate for r in target.peak]
        errors = sum(r.errors for r in target.peak)
        cpu = [median([r.cpu[i] for r in target.peak]) for i in range(3)]
        say(f"  {target.name}:")
        say(f"    peak req/s            {spread(rates, '{:,.0f}')}")
        if target is not targets[0]:
            say(f"    ratio per round       {', '.join(f'{r:.3f}' for r in target_ratios)}")
            say(f"    ratio                 {spread(target_ratios, '{:.3f}')}")
            say(f"    ratio of medians      {median(rates) / median(reference_rates):.3f}")
        p50 = median([r.p50_ms for r in target.peak])
        p99 = median([r.p99_ms for r in target.peak])
        say(f"    at peak p50 / p99     {p50:.2f} / {p99:.2f} ms")
        say(
            f"    CPU at peak (cores)   {note or 'process'} {cpu[0]:.2f}, redis-server"
            f" {cpu[1]:.2f}, wrk {cpu[2]:.2f}"
        )
        per_request = [r.cpu[0] * r.seconds / r.requests * 1e6 for r in target.peak]
        say(f"    CPU per request (µs)  {spread(per_request, '{:.1f}')}")
        if errors:
            say(f"    !! {errors} wrk errors (non-2xx, timeouts, socket errors)")
