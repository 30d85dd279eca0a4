"""Soak (issue #10): N minutes of mixed load with one Redis restart in the middle.

``python -m bench.soak [--minutes 30] [--rate 300] [--outage 2] [--appendfsync always]``

Starts a redis-server with the settings of ``deploy/overlays/bundled-redis/redis.conf`` (AOF on;
``--appendfsync always`` by default, so that a token answered wrongly after the restart is the
service's fault, not a second of writes Redis lost) and one ``tokenstore serve`` at ``INFO``, as
shipped. It issues ``--tokens`` (2,000; a tenth of them revoked), then drives an open-loop load of
``--rate`` requests a second: 95% introspections of those tokens and of the ones issued since,
2.5% issues, 2.5% revocations by value (``tests/mixed_load.py``, which judges every
introspection against the revocations acknowledged before it was sent). Half-way through,
Redis is killed (SIGKILL) and restarted on the same port ``--outage`` seconds later.

Every ``--interval`` seconds (default 60) it prints the answers of that interval by kind and
status, introspection p50/p99, the p99 of writes, and the service process's RSS and open file
descriptors; at the end a summary: RSS and fd growth (from the end of the first interval),
5xx other than 503, 503s without ``Retry-After``, client errors, wrong answers, and how the
restart went. Exit code 1 if anything was wrong (a 500, a hung request, a wrong answer).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from mixed_load import Answer, Mix, MixedLoad
from redis_faults import FaultyRedis

from bench.harness import banner, machine, say, service_process, write_clients_file
from bench.memory import SHIPPED

SAMPLE_EVERY = 5.0  # seconds, at most
EXPECTED = {"introspect": {200, 503}, "issue": {201, 503}, "revoke": {200, 503}}


def redis_args(appendfsync: str) -> tuple[str, ...]:
    """deploy/overlays/bundled-redis/redis.conf, but for ports, paths and maxmemory."""
    return (
        "--maxmemory-policy", "noeviction",
        "--appendonly", "yes",
        "--appendfsync", appendfsync,
        "--aof-use-rdb-preamble", "yes",
        "--lazyfree-lazy-expire", "yes",
        *SHIPPED,
    )  # fmt: skip


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_pressure() -> float:
    """The share of the last minute some task waited for a CPU (Linux PSI), in %."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split("\n")[0].split()
    except OSError:
        return float("nan")
    return float(some[2].removeprefix("avg60="))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Interval:
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    introspections: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    rss: float = float("nan")
    fds: int = 0
    cpu_pressure: float = float("nan")  # /proc/pressure/cpu "some" avg60, %: others' load too


@dataclass
class Totals:
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    no_retry_after: int = 0
    unexpected: int = 0  # a status not expected for its kind (500 included)
    slowest: float = 0.0


class Recorder:
    """Aggregates answers as they come (a 30-minute run holds no list of them)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.start = time.monotonic()
        self.intervals: dict[int, Interval] = collections.defaultdict(Interval)
        self.totals = Totals()
        self.printed = 0  # intervals whose row was printed
        self.back = math.inf  # when Redis answered again after its restart
        self.first_2xx_back = math.inf  # seconds from then to the first 2xx answered
        self.spell_503: tuple[float, float] = (math.inf, -math.inf)  # first and last 503

    def index(self, at: float) -> int:
        return int((at - self.start) // self.interval)

    def on_answer(self, answer: Answer) -> None:
        bucket, totals = self.intervals[self.index(answer.done)], self.totals
        label = str(answer.status) if answer.status is not None else answer.error or "error"
        bucket.counts[answer_class(answer)] += 1
        bucket.counts["wrong"] += answer.wrong is not None
        totals.statuses[f"{answer.kind} {label}"] += 1
        totals.slowest = max(totals.slowest, answer.seconds)
        if answer.error:
            totals.errors[answer.error] += 1
        elif answer.status not in EXPECTED[answer.kind]:
            totals.unexpected += 1
        if answer.status == 503:
            totals.no_retry_after += answer.retry_after is None
            first, last = self.spell_503
            self.spell_503 = (min(first, answer.done), max(last, answer.done))
        elif answer.status is not None and answer.status < 300 and answer.done > self.back:
            self.first_2xx_back = min(self.first_2xx_back, answer.done - self.back)
        if answer.wrong:
            totals.wrong[answer.wrong] += 1
        if answer.status is not None and answer.status < 300:
            (bucket.introspections if answer.kind == "introspect" else bucket.writes).append(
                answer.seconds
            )

    def print_rows(self, upto: int) -> None:
        while self.printed < upto:
            say(self.row(self.printed))
            self.printed += 1

    def row(self, n: int) -> str:
        """One line of a Markdown table (HEADER): answers by class, latency, the process."""
        b, ms = self.intervals[n], 1000.0
        counts = " | ".join(str(b.counts[c]) for c in CLASSES)
        return (
            f"| {(n + 1) * self.interval / 60:.2f} | {sum(b.counts.values())} | {counts} | "
            f"{percentile(b.introspections, 50) * ms:.2f} | "
            f"{percentile(b.introspections, 99) * ms:.2f} | "
            f"{percentile(b.writes, 99) * ms:.2f} | {b.rss:.1f} | {b.fds} | {b.cpu_pressure:.0f} |"
        )


CLASSES = ("2xx", "503", "other 5xx", "4xx", "no answer", "wrong")
HEADER = (
    f"| min | answers | {' | '.join(CLASSES)} | introspection p50 ms | p99 ms | "
    "issue/revoke p99 ms | RSS MiB | fds | CPU pressure % |\n" + "|---" * (len(CLASSES) + 8) + "|"
)


def answer_class(answer: Answer) -> str:
    if answer.status is None:
        return "no answer"
    if answer.status == 503:
        return "503"
    return {2: "2xx", 4: "4xx", 5: "other 5xx"}.get(answer.status // 100, "other 5xx")


async def prepare(url: str, headers: dict[str, str], load: MixedLoad, tokens: int) -> None:
    """``tokens`` tokens for the load to introspect, a tenth of them revoked."""
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(path: str, body: Any, status: int) -> Any:
            async with limit, session.post(url + path, json=body) as response:
                assert response.status == status, await response.text()
                return await response.json()

        issued = await asyncio.gather(
            *(
                call("/v1/tokens", {"user_id": f"load-{n % 500}", "app_id": "load"}, 201)
                for n in range(tokens)
            )
        )
        revoked = issued[: tokens // 10]
        await asyncio.gather(*(call("/v1/revoke", {"token": t["token"]}, 200) for t in revoked))
    for n, token in enumerate(issued):
        load.track(token["token"], token["id"], revoked=n < tokens // 10)


async def sample(recorder: Recorder, pid: int, stop: asyncio.Event) -> None:
    """RSS and fds of the service into the current interval; prints each interval's row once
    it has ended."""
    while not stop.is_set():
        bucket = recorder.intervals[recorder.index(time.monotonic())]
        bucket.rss, bucket.fds, bucket.cpu_pressure = rss_mib(pid), open_fds(pid), cpu_pressure()
        recorder.print_rows(recorder.index(time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(SAMPLE_EVERY, recorder.interval / 2))


@dataclass
class Restart:
    killed: float = 0.0
    back: float = 0.0


async def restart_redis(redis: FaultyRedis, at: float, outage: float, out: Restart) -> None:
    await asyncio.sleep(at)
    out.killed = time.monotonic()
    await asyncio.to_thread(redis.kill)
    await asyncio.sleep(outage)
    await asyncio.to_thread(redis.restart)
    out.back = time.monotonic()


def summary(recorder: Recorder, restart: Restart, skipped: int) -> bool:
    t, intervals = recorder.totals, recorder.intervals
    banner("summary")
    full = [intervals[n] for n in sorted(intervals) if intervals[n].fds]
    first, last = full[0], full[-1]
    say(f"answers: {dict(sorted(t.statuses.items()))}; not sent (too many in flight): {skipped}")
    say(f"unexpected statuses (500s included): {t.unexpected}; client errors: {dict(t.errors)}")
    say(f"503 without Retry-After: {t.no_retry_after}; slowest answer: {t.slowest:.2f} s")
    say(f"wrong answers: {dict(t.wrong) or 0}")
    first_503, last_503 = recorder.spell_503
    first_2xx_ms = recorder.first_2xx_back * 1000
    say(
        f"Redis killed at {(restart.killed - recorder.start) / 60:.2f} min, answering again "
        f"{restart.back - restart.killed:.2f} s later; first 2xx {first_2xx_ms:.1f} ms "
        f"after that; 503s from {first_503 - restart.killed:+.2f} s to "
        f"{last_503 - restart.killed:+.2f} s of the kill"
    )
    say(
        f"RSS {first.rss:.1f} MiB after the first interval -> {last.rss:.1f} MiB at the end "
        f"({last.rss - first.rss:+.1f} MiB; max {max(i.rss for i in full):.1f}); fds "
        f"{first.fds} -> {last.fds} ({last.fds - first.fds:+d}; max {max(i.fds for i in full)})"
    )
    p99s = [percentile(i.introspections, 99) * 1000 for i in full if i.introspections]
    say(
        f"introspection p99 per interval: min {min(p99s):.2f}, median "
        f"{statistics.median(p99s):.2f}, max {max(p99s):.2f} ms"
    )
    return not (t.unexpected or t.errors or t.no_retry_after or t.wrong)


async def soak(args: argparse.Namespace) -> bool:
    duration = args.minutes * 60
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as workdir,
        FaultyRedis(extra_args=redis_args(args.appendfsync)) as redis,
    ):
        credentials = write_clients_file(Path(workdir))
        with service_process(redis.url, credentials) as service:
            recorder = Recorder(args.interval)
            load = MixedLoad(
                service.url, credentials.headers, recorder.on_answer, rate=args.rate,
                mix=Mix(issue=0.025, revoke=0.025, users=5000),
            )  # fmt: skip
            await prepare(service.url, credentials.headers, load, args.tokens)
            banner(
                f"{args.minutes} min at {args.rate} req/s, Redis killed at half-time for "
                f"{args.outage} s (appendfsync {args.appendfsync}); {machine()}"
            )
            say(HEADER)
            recorder.start = time.monotonic()
            stop, restart = asyncio.Event(), Restart()
            tasks = [
                asyncio.create_task(load.run(stop)),
                asyncio.create_task(sample(recorder, service.pid, stop)),
            ]
            await restart_redis(redis, duration / 2, args.outage, restart)
            recorder.back = restart.back
            await asyncio.sleep(max(0.0, recorder.start + duration - time.monotonic()))
            stop.set()
            await asyncio.gather(*tasks)
            last = recorder.intervals[max(recorder.intervals)]
            last.rss, last.fds = rss_mib(service.pid), open_fds(service.pid)
            recorder.print_rows(max(recorder.intervals) + 1)
            return summary(recorder, restart, load.skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=300.0, help="requests started per second")
    parser.add_argument("--outage", type=float, default=2.0, help="seconds Redis stays down")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per printed row")
    parser.add_argument("--appendfsync", choices=["always", "everysec"], default="always")
    parser.add_argument("--tokens", type=int, default=2000, help="issued before (a tenth revoked)")
    args = parser.parse_args(argv)
    ok = uvloop.run(soak(args))  # the load generator's own overhead, kept small
    say("OK" if ok else "FAILED: see the summary")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
