"""Benchmark 2: one user holding 1,000 tokens: list them, issue more, revoke them all.

``python -m bench.revoke_user [--tokens 1000] [--rounds 7] [--issues 5]``

Each round gives fresh users ``--tokens`` typical tokens (two apps, as a web + phone user
would have; ``bench.bulk.BulkIssuer``) and measures, in an order that rotates every round:
- HTTP ``GET /v1/users/{id}/tokens``: the listing of the user's 1,000 tokens, then
  HTTP ``POST /v1/tokens``: the user's 1,001st token, and up to the 1,000 + ``--issues``th,
  each timed on its own (then the user's tokens are revoked, untimed);
- revoke-all, three ways, each on its own fresh user:
  - HTTP: ``DELETE /v1/users/{id}/tokens`` on ``tokenstore serve`` (one process);
  - service layer: ``TokenService.revoke_user`` in this process (script + revocation events);
  - store layer: ``TokenStore.revoke_user``, the one Lua script on the user's hash.
HTTP calls are timed by the client from sending to the whole answer read. It prints the
milliseconds of each, the time inside Redis (``INFO commandstats``: the scripts' and XADD's
own time; without a script, every command's) and the Redis commands each cost, then medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis

from bench.api import Api
from bench.bulk import BulkIssuer, check_same_layout
from bench.harness import (
    Credentials,
    admin_client,
    banner,
    commandstats,
    commandstats_delta,
    machine,
    median,
    redis_server,
    say,
    service_process,
    spread,
    write_clients_file,
)
from bench.workload import APPS, Spec, typical, user_id
from service.scope import EVERYTHING
from service.service import Actor, TokenService
from service.settings import Settings
from service.store import TokenStore

TOKEN_TTL = 6 * 3600
# Commands a caller sends itself when a script runs; every other command counted ran in one.
SENT = ("evalsha", "xadd")
Step = Callable[[], Awaitable[None]]


@dataclass
class Way:
    name: str
    millis: list[float] = field(default_factory=list)
    redis_us: list[float] = field(default_factory=list)
    commands: str = ""

    def record(self, elapsed_s: float, delta: dict[str, tuple[int, int]]) -> None:
        self.millis.append(elapsed_s * 1000)
        calls = {name: n for name, (n, _) in delta.items() if name != "info"}
        if "evalsha" in calls:  # commands run by a script count in the script's time too
            self.redis_us.append(sum(delta[name][1] for name in SENT if name in delta))
            sent = [f"{calls.pop(name)} {name.upper()}" for name in SENT if name in calls]
            inside = [f"{n} {name.upper()}" for name, n in sorted(calls.items())]
            self.commands = f"sent {' + '.join(sent)}; inside scripts {', '.join(inside)}"
        else:
            self.redis_us.append(sum(delta[name][1] for name in calls))
            self.commands = "sent " + " + ".join(f"{n} {c.upper()}" for c, n in calls.items())


def _user_tokens(rng: random.Random, count: int) -> list[Spec]:
    user = user_id(rng)
    apps = rng.sample(APPS, 2)
    return [typical(rng, user, apps[i % 2]) for i in range(count)]


async def _timed(
    way: Way, admin: redis.Redis, action: Callable[[], Awaitable[int]], expect: int
) -> None:
    """Time ``action`` (it returns how many tokens it handled) and the Redis work it caused."""
    before = commandstats(admin)
    started = time.perf_counter()
    count = await action()
    elapsed = time.perf_counter() - started
    delta = commandstats_delta(before, commandstats(admin))
    if count != expect:
        raise RuntimeError(f"{way.name}: {count} tokens, expected {expect}")
    way.record(elapsed, delta)


class Rounds:
    def __init__(
        self, store: TokenStore, service: TokenService, api: Api, admin: redis.Redis, issues: int
    ) -> None:
        self.store, self.service, self.api, self.admin = store, service, api, admin
        self.issues = issues
        self.issuer = BulkIssuer(service, store, TOKEN_TTL)
        self.listing = Way("HTTP GET /v1/users/{id}/tokens (list all)")
        self.issuing = Way("HTTP POST /v1/tokens (the 1,001st, 1,002nd... token)")
        self.http = Way("HTTP DELETE /v1/users/{id}/tokens")
        self.layer = Way("TokenService.revoke_user")
        self.script = Way("TokenStore.revoke_user (1 script)")

    async def _gone(self, user: str, name: str) -> None:
        if self.admin.exists(self.store.keys.user(await self.store.user_tag(user))):
            raise RuntimeError(f"{name}: the user's hash is still there")

    async def list_and_issue(self, specs: list[Spec], listing: Way, issuing: Way) -> None:
        await self.issuer.issue(specs)
        user, n = specs[0].user_id, len(specs)
        await _timed(listing, self.admin, lambda: self._list(user), n)
        for spec in specs[-self.issues :]:
            await _timed(issuing, self.admin, partial(self._issue, spec), 1)
        revoked = await self.store.revoke_user(user, apps=None, keep=None)
        if len(revoked) != n + self.issues:
            raise RuntimeError(f"cleanup revoked {len(revoked)} of {n + self.issues} tokens")
        await self._gone(user, issuing.name)

    async def _list(self, user: str) -> int:
        return len(await self.api.list_user(user))

    async def _issue(self, spec: Spec) -> int:
        return 1 if (await self.api.issue(spec, TOKEN_TTL))["token"] else 0

    async def revoke(self, specs: list[Spec], way: Way) -> None:
        await self.issuer.issue(specs)
        user = specs[0].user_id
        ways: dict[str, Callable[[], Awaitable[int]]] = {
            self.http.name: lambda: self._via_http(user),
            self.layer.name: lambda: self._via_service(user),
            self.script.name: lambda: self._via_store(user),
        }
        await _timed(way, self.admin, ways[way.name], len(specs))
        await self._gone(user, way.name)

    async def _via_http(self, user: str) -> int:
        return len((await self.api.revoke_user(user))[0])

    async def _via_service(self, user: str) -> int:
        return len(await self.service.revoke_user(user, actor=Actor(), scope=EVERYTHING))

    async def _via_store(self, user: str) -> int:
        return len(await self.store.revoke_user(user, apps=None, keep=None))

    def steps(self, rng: random.Random, count: int, *, warm: bool = False) -> list[Step]:
        def fresh(way: Way) -> Way:
            return Way(way.name) if warm else way

        listing, issuing = fresh(self.listing), fresh(self.issuing)
        steps: list[Step] = [
            partial(self.list_and_issue, _user_tokens(rng, count), listing, issuing)
        ]
        for way in (self.http, self.layer, self.script):
            steps.append(partial(self.revoke, _user_tokens(rng, count), fresh(way)))
        return steps

    def report(self, number: int) -> None:
        last = {
            "list": self.listing.millis[-1],
            "issue (median)": median(self.issuing.millis[-self.issues :]),
            "DELETE": self.http.millis[-1],
            "service": self.layer.millis[-1],
            "store": self.script.millis[-1],
        }
        say(f"  round {number + 1}: " + "  ".join(f"{k} {v:6.2f} ms" for k, v in last.items()))


async def _rounds(
    url: str, credentials: Credentials, api_url: str, args: argparse.Namespace
) -> None:
    settings = Settings(redis_url=url)
    store = TokenStore(settings)
    service = TokenService(store, settings)
    admin = admin_client(url)
    rng = random.Random(3)
    try:
        async with Api(api_url, credentials) as api:
            rounds = Rounds(store, service, api, admin, min(args.issues, args.tokens))
            await rounds.issuer.open()
            await check_same_layout(rounds.issuer, _user_tokens(rng, 1)[0], user_id(rng))
            for step in rounds.steps(rng, 10, warm=True):  # connections, script cache
                await step()
            for number in range(args.rounds):
                steps = rounds.steps(rng, args.tokens)
                shift = number % len(steps)
                for step in [*steps[shift:], *steps[:shift]]:
                    await step()
                rounds.report(number)
    finally:
        admin.close()
        await store.close()
    _summary(rounds, args.tokens)


def _summary(rounds: Rounds, n: int) -> None:
    banner(f"summary: a user holding {n} tokens (median, min-max)")
    for way in (rounds.listing, rounds.issuing, rounds.http, rounds.layer, rounds.script):
        say(f"  {way.name}")
        say(f"    wall time        {spread(way.millis, '{:.2f}')} ms")
        say(f"    in Redis         {spread([u / 1000 for u in way.redis_us], '{:.2f}')} ms")
        say(f"    Redis commands   {way.commands}")
    ratio = median(rounds.http.millis) / median(rounds.script.millis)
    say(f"  revoke-all, HTTP / store-level wall time: {ratio:.2f}x")


def run(args: argparse.Namespace) -> None:
    say(f"bench.revoke_user: {machine()}, loopback only")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        credentials = write_clients_file(workdir)
        server = stack.enter_context(redis_server())
        service = stack.enter_context(service_process(server.url, credentials))
        banner(f"a user holding {args.tokens} tokens: list, issue {args.issues} more, revoke all")
        asyncio.run(_rounds(server.url, credentials, service.url, args))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.revoke_user", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000, help="tokens of the user")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--issues", type=int, default=5, help="tokens issued past --tokens")
    args = parser.parse_args(argv)
    if not (1 <= args.tokens <= 100_000 and 1 <= args.rounds <= 100 and 1 <= args.issues <= 100):
        parser.error("tokens 1-100000, rounds 1-100, issues 1-100")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
