"""Benchmark 2: revoke every token of a user holding 1,000 tokens.

``python -m bench.revoke_user [--tokens 1000] [--rounds 7]``

Each round gives fresh users 1,000 typical tokens (two apps, as a web + phone user would
have) and revokes them three ways, side by side:
- HTTP: ``DELETE /v1/users/{id}/tokens`` on ``tokenstore serve`` (one process), timed by the
  client from sending to the whole answer read;
- service layer: ``TokenService.revoke_user`` in this process (script + revocation events);
- store layer: ``TokenStore.revoke_user``, the one Lua script on the user's slot.
It prints the milliseconds of each, the script's own time inside Redis (``INFO
commandstats``) and the Redis commands each way cost, then the medians.
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
from service import tokens
from service.scope import EVERYTHING
from service.service import Actor, TokenService
from service.settings import Settings
from service.store import TokenStore

TOKEN_TTL = 6 * 3600
# Commands the service sends itself; every other command counted ran inside the script.
SENT = ("evalsha", "xadd")


@dataclass
class Way:
    name: str
    millis: list[float] = field(default_factory=list)
    script_us: list[float] = field(default_factory=list)
    commands: str = ""


def _user_tokens(rng: random.Random, count: int) -> list[Spec]:
    user = user_id(rng)
    apps = rng.sample(APPS, 2)
    return [typical(rng, user, apps[i % 2]) for i in range(count)]


async def _measure(
    way: Way,
    admin: redis.Redis,
    issuer: BulkIssuer,
    specs: list[Spec],
    revoke: Callable[[str], Awaitable[int]],
) -> None:
    await issuer.issue(specs)
    before = commandstats(admin)
    started = time.perf_counter()
    revoked = await revoke(specs[0].user_id)
    elapsed = time.perf_counter() - started
    delta = commandstats_delta(before, commandstats(admin))
    if revoked != len(specs):
        raise RuntimeError(f"{way.name}: revoked {revoked} of {len(specs)} tokens")
    store = issuer.service.store
    tag = tokens.user_tag(await store.tag_key(), specs[0].user_id)
    if admin.exists(store.keys.user_index(tag)):
        raise RuntimeError(f"{way.name}: the user's index is still there")
    way.millis.append(elapsed * 1000)
    way.script_us.append(delta.get("evalsha", (0, 0))[1])
    calls = {name: n for name, (n, _) in delta.items() if name != "info"}
    sent = [f"{calls.pop(name)} {name.upper()}" for name in SENT if name in calls]
    inside = [f"{n} {name.upper()}" for name, n in sorted(calls.items())]
    way.commands = f"sent {' + '.join(sent)}; inside the script {', '.join(inside)}"


async def _rounds(
    url: str, credentials: Credentials, api_url: str, args: argparse.Namespace
) -> None:
    settings = Settings(redis_url=url)
    store = TokenStore(settings)
    service = TokenService(store, settings)
    admin = admin_client(url)
    rng = random.Random(3)
    http = Way("HTTP DELETE /v1/users/{id}/tokens")
    layer = Way("TokenService.revoke_user")
    script = Way("TokenStore.revoke_user (1 script)")
    try:
        issuer = BulkIssuer(service, TOKEN_TTL)
        await issuer.open()
        await check_same_layout(issuer, _user_tokens(rng, 1)[0], user_id(rng))
        async with Api(api_url, credentials) as api:

            async def via_http(user: str) -> int:
                return len((await api.revoke_user(user))[0])

            async def via_service(user: str) -> int:
                return len(await service.revoke_user(user, actor=Actor(), scope=EVERYTHING))

            async def via_store(user: str) -> int:
                tag = tokens.user_tag(await store.tag_key(), user)
                return len((await store.revoke_user(tag, user_id=user))[0])

            ways = [(http, via_http), (layer, via_service), (script, via_store)]
            for way, revoke in ways:  # warm-up: connections, script cache
                await _measure(Way(way.name), admin, issuer, _user_tokens(rng, 10), revoke)
            for number in range(args.rounds):
                shift = number % len(ways)
                for way, revoke in [*ways[shift:], *ways[:shift]]:
                    await _measure(way, admin, issuer, _user_tokens(rng, args.tokens), revoke)
                say(
                    f"  round {number + 1}: "
                    + "   ".join(f"{w.name.split()[0]} {w.millis[-1]:6.2f} ms" for w, _ in ways)
                )
    finally:
        admin.close()
        await store.close()
    banner(f"summary: revoke all {args.tokens} tokens of a user (median, min-max)")
    for way in (http, layer, script):
        say(f"  {way.name}")
        say(f"    wall time        {spread(way.millis, '{:.2f}')} ms")
        say(f"    script in Redis  {spread([u / 1000 for u in way.script_us], '{:.2f}')} ms")
        say(f"    Redis commands   {way.commands}")
    ratio = median(http.millis) / median(script.millis)
    say(f"  HTTP / store-level wall time: {ratio:.2f}x")


def run(args: argparse.Namespace) -> None:
    say(f"bench.revoke_user: {machine()}, loopback only")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        credentials = write_clients_file(workdir)
        server = stack.enter_context(redis_server())
        service = stack.enter_context(service_process(server.url, credentials))
        banner(f"revoke-all of a user holding {args.tokens} tokens, {args.rounds} rounds")
        asyncio.run(_rounds(server.url, credentials, service.url, args))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.revoke_user", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000, help="tokens of the user")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if not (1 <= args.tokens <= 100_000 and 1 <= args.rounds <= 100):
        parser.error("tokens 1-100000, rounds 1-100")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
