"""Issue 13: ``GatewayClient(local_jwt=True)``: local JWT checks per second in one process, the
time from a revocation to the gateway's first "no", and the deny-list's memory per jti in the
gateway and in Redis.

``python -m bench.gateway_jwt [--seconds 5] [--jwts 10000] [--rounds 3]``

One redis-server, one ``tokenstore serve`` (``INFO``, as shipped) with a JWKS of three keys
(RS256, ES256, EdDSA) and two API clients: an admin and a gateway with ``introspect``. Through
the API: ``--cutoffs`` user cut-offs (``DELETE /v1/users/{u}/tokens``), then ``--jwts`` JWTs
signed here (the three algorithms in turn, 5 per user, half of the users with a cut-off that
they pass: issued after it), ``--denied`` jtis denied by jti and 1% of the working set denied
by value (``POST /v1/jwt/revoke``). Then a ``GatewayClient`` in this process replays the feed
until synced, and:

(a) checks the working set locally, ``--rounds`` times: a cold pass per algorithm (the
verifier's cache of verified JWTs emptied first: every signature verified) and warm passes
(cached) for ``--seconds``, each of which must refuse exactly the denied ones. Target: warm >=
50,000 checks/s. The service's request counter (``tokenstore_http_requests_total``, metrics
port) is read before and after the local phase (expected: no request).
(b) ``--revocations`` JWTs of each kind revoked (``POST /v1/jwt/revoke {token}``, and a user
cut-off) while a task polls ``check`` every 0.2 ms: ms from the revocation's 200 (and from
sending it) to the first None.
(c) ``--memory`` more jtis denied (``bench.jwt.deny_list_memory``, which measures Redis); the
gateway's deny-list by ``sys.getsizeof`` of its dict, keys and values (average per entry, and
growth by those), and a fresh ``JwtRevocations`` fed 10,000 and 100,000 ``jwt`` events in
the feed's wire form, measured with ``tracemalloc``.

The gateway and the service share 2 cores: the service is idle during (a), not during (b).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from redis_servers import free_port

from bench.gateway_common import percentile
from bench.gateway_jwt_memory import deny_list_sizes
from bench.harness import (
    HOST,
    Credentials,
    HttpProcess,
    banner,
    machine,
    median,
    redis_server,
    say,
    service_process,
    spread,
    write_clients_file,
)
from bench.jwt import ISSUER, claims, jwks_of, signing_keys
from service.client import GatewayClient

TARGET = 50_000  # warm local checks per second, one process (issue 13)
CHUNK = 1_000  # checks between two yields to the event loop (the feed is read meanwhile)
POLL = 0.0002
TIMEOUT = 30.0
CONCURRENCY = 16  # API calls in flight while loading the deny-list
JWTS_PER_USER = 5
REQUESTS = "tokenstore_http_requests_total"


@dataclass(frozen=True, slots=True)
class Setup:
    service: HttpProcess
    admin: Credentials
    gateway_authorization: str
    metrics_url: str
    redis_url: str
    keys: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkingSet:
    by_alg: dict[str, list[str]]
    mixed: list[str]  # the algorithms interleaved
    denied: int  # how many of them are denied by value


# --- setup: clients, signing, loading through the API --------------------------------------


def _with_gateway_client(directory: Path) -> tuple[Credentials, str]:
    """The harness's admin client and a gateway API client (``introspect``, every app: it must
    see ``jwt`` events without an app); returns the admin and the gateway's Authorization."""
    admin = write_clients_file(directory)
    secret = secrets.token_urlsafe(32)
    document = json.loads(admin.path.read_text())
    document["clients"].append({
        "id": "gateway", "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "permissions": ["introspect"], "apps": ["*"],
    })  # fmt: skip
    admin.path.write_text(json.dumps(document))
    return admin, Credentials("gateway", secret, admin.path).authorization


def _sign(keys: dict[str, Any], alg: str, user_id: str) -> str:
    return jwt.encode(claims(user_id, int(time.time())), keys[alg], algorithm=alg,
                      headers={"kid": alg})  # fmt: skip


def _working_set(
    keys: dict[str, Any], count: int, denied_count: int
) -> tuple[WorkingSet, list[str]]:
    """``count`` JWTs, the algorithms in turn, and the ones of them to deny by value."""
    users = max(1, count // JWTS_PER_USER)
    algs = list(keys)
    mixed = [_sign(keys, algs[i % len(algs)], f"user-{i % users}") for i in range(count)]
    by_alg = {alg: mixed[n :: len(algs)] for n, alg in enumerate(algs)}
    to_deny = mixed[:: max(1, count // denied_count)][:denied_count] if denied_count else []
    return WorkingSet(by_alg, mixed, len(to_deny)), to_deny


async def _call(session: aiohttp.ClientSession, setup: Setup, method: str, path: str,
                body: dict[str, Any] | None = None) -> None:  # fmt: skip
    headers = {"Authorization": setup.admin.authorization}
    url = setup.service.url + path
    async with session.request(method, url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
        await response.read()


async def _bounded(calls: Sequence[Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Awaitable[None]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def _load(session: aiohttp.ClientSession, setup: Setup,
                args: argparse.Namespace) -> tuple[WorkingSet, float]:  # fmt: skip
    """Cut-offs, then the working set (signed after them), then the denials; returns the
    working set and how long loading the API took."""
    started = time.perf_counter()
    await _bounded([_call(session, setup, "DELETE", f"/v1/users/user-{n}/tokens")
                    for n in range(args.cutoffs)])  # fmt: skip
    await asyncio.sleep(1.05 - time.time() % 1)  # iat has whole seconds: pass the cut-offs
    loading = time.perf_counter() - started
    working, to_deny = _working_set(setup.keys, args.jwts, args.jwts // 100)
    started = time.perf_counter()
    exp = int(time.time()) + 3600
    calls = [_call(session, setup, "POST", "/v1/jwt/revoke", {"jti": uuid.uuid4().hex, "exp": exp})
             for _ in range(args.denied)]  # fmt: skip
    calls += [_call(session, setup, "POST", "/v1/jwt/revoke", {"token": t}) for t in to_deny]
    await _bounded(calls)
    return working, loading + time.perf_counter() - started


async def _requests_answered(session: aiohttp.ClientSession, metrics_url: str) -> int:
    """``tokenstore_http_requests_total``, every route and status (the metrics port's own
    scrapes are not counted)."""
    async with session.get(metrics_url) as response:
        text = await response.text()
    counters = [line for line in text.splitlines() if line.startswith(f"{REQUESTS}{{")]
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in counters))


async def _synced(gateway: GatewayClient) -> float:
    started = time.perf_counter()
    while gateway.jwt is None or not gateway.jwt.synced:
        if time.perf_counter() - started > TIMEOUT:
            raise RuntimeError("the GatewayClient did not sync with the feed")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


# --- (a) local checks per second ------------------------------------------------------------


async def _pass(gateway: GatewayClient, tokens: Sequence[str]) -> tuple[float, float, int]:
    """One check of each token: wall and CPU seconds, and how many were refused."""
    refused = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(tokens), CHUNK):
        for token in tokens[start : start + CHUNK]:
            if await gateway.check(token) is None:
                refused += 1
        await asyncio.sleep(0)
    return time.perf_counter() - wall, time.process_time() - cpu, refused


async def _round(gateway: GatewayClient, working: WorkingSet, seconds: float,
                 rates: dict[str, list[float]]) -> None:  # fmt: skip
    assert gateway.jwt is not None
    verifier = gateway.jwt.verifier
    verifier.replace_keys(verifier.key_set)  # the same keys: forgets every verified JWT
    wall_all = cpu_all = 0.0
    for alg, tokens in working.by_alg.items():
        wall, cpu, _ = await _pass(gateway, tokens)
        rates[f"cold {alg}"].append(len(tokens) / wall)
        wall_all, cpu_all = wall_all + wall, cpu_all + cpu
    rates["cold, all"].append(len(working.mixed) / wall_all)
    rates["cold us CPU"].append(cpu_all / len(working.mixed) * 1e6)
    checks, wall_all, cpu_all = 0, 0.0, 0.0
    while wall_all < seconds:
        wall, cpu, refused = await _pass(gateway, working.mixed)
        if refused != working.denied:
            raise RuntimeError(f"a pass refused {refused} JWTs, {working.denied} are denied")
        checks, wall_all, cpu_all = checks + len(working.mixed), wall_all + wall, cpu_all + cpu
    rates["warm"].append(checks / wall_all)
    rates["warm us CPU"].append(cpu_all / checks * 1e6)


async def _local_checks(gateway: GatewayClient, working: WorkingSet,
                        args: argparse.Namespace) -> dict[str, list[float]]:  # fmt: skip
    algs = ", ".join(f"{len(t):,} {alg}" for alg, t in working.by_alg.items())
    banner(f"(a) local checks: {len(working.mixed):,} JWTs ({algs}), {args.rounds} rounds")
    names = [f"cold {alg}" for alg in working.by_alg]
    names += ["cold, all", "cold us CPU", "warm", "warm us CPU"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    kept = gateway.jwt.verifier.cache_entries if gateway.jwt is not None else 0
    if len(working.mixed) > kept:
        say(f"note: more JWTs than the gateway's verifier keeps ({kept:,}, the oldest dropped "
            "first): warm passes verify some signatures again")  # fmt: skip
    for number in range(args.rounds):
        await _round(gateway, working, args.seconds, rates)
        say(f"round {number + 1}: " + ", ".join(f"{n} {rates[n][-1]:,.0f}" for n in names))
    return rates


def _print_local(rates: dict[str, list[float]], requests: int, loaded: int) -> None:
    banner("(a) medians (min-max), checks/s in one process")
    warm, cold = median(rates["warm"]), median(rates["cold, all"])
    for name in [n for n in rates if n.startswith("cold ") and "CPU" not in n]:
        say(f"{name:24} {spread(rates[name]):>30}")
    say(f"{'cold: us CPU per check':24} {spread(rates['cold us CPU'], '{:.1f}'):>30}")
    say(f"{'warm (cached)':24} {spread(rates['warm']):>30}  "
        f"{warm / TARGET:.2f}x the target ({TARGET:,}/s); {warm / cold:.0f}x cold")  # fmt: skip
    say(f"{'warm: us CPU per check':24} {spread(rates['warm us CPU'], '{:.2f}'):>30}")
    say(f"requests the service answered during the local checks: {requests} "
        f"(while loading the deny-list: {loaded:,}; tokenstore_http_requests_total)")  # fmt: skip


# --- (b) revocation latency -----------------------------------------------------------------


async def _first_refusal(gateway: GatewayClient, token: str) -> float:
    deadline = time.perf_counter() + TIMEOUT
    while await gateway.check(token) is not None:
        if time.perf_counter() > deadline:
            raise RuntimeError("a revoked JWT is still accepted")
        await asyncio.sleep(POLL)
    return time.perf_counter()


async def _revoke_one(session: aiohttp.ClientSession, setup: Setup, gateway: GatewayClient,
                      kind: str, n: int) -> tuple[float, float]:  # fmt: skip
    """ms from the 200 and from sending the revocation to the gateway's first None."""
    alg = list(setup.keys)[n % len(setup.keys)]
    user = f"latency-{kind}-{n}"
    token = _sign(setup.keys, alg, user)
    if await gateway.check(token) is None:
        raise RuntimeError("a fresh JWT was refused")
    watch = asyncio.create_task(_first_refusal(gateway, token))
    sent = time.perf_counter()
    if kind == "jti":
        await _call(session, setup, "POST", "/v1/jwt/revoke", {"token": token})
    else:
        await _call(session, setup, "DELETE", f"/v1/users/{user}/tokens")
    answered = time.perf_counter()
    refused = await watch
    return (refused - answered) * 1000, (refused - sent) * 1000


async def _latency(session: aiohttp.ClientSession, setup: Setup, gateway: GatewayClient,
                   count: int) -> None:  # fmt: skip
    kinds = {"jti": "POST /v1/jwt/revoke {token}", "cut-off": "DELETE /v1/users/{u}/tokens"}
    banner(f"(b) revocation -> first None from check(): {count} of each, polled every "
           f"{POLL * 1000:g} ms")  # fmt: skip
    for kind in kinds:
        for n in range(5):  # warm-up
            await _revoke_one(session, setup, gateway, kind, -n - 1)
    times: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in kinds}
    for n in range(count):
        for kind in kinds:
            after_200, after_send = await _revoke_one(session, setup, gateway, kind, n)
            times[kind][0].append(after_200)
            times[kind][1].append(after_send)
    for kind, label in kinds.items():
        for what, values in zip(("after its 200", "after sending"), times[kind], strict=True):
            p50, p99 = percentile(values, 50), percentile(values, 99)
            say(f"  {label:30} {what:14} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                f"min {min(values):6.2f}  max {max(values):6.2f} ms")  # fmt: skip
    for kind, label in kinds.items():
        early = sum(1 for value in times[kind][0] if value <= 0)
        say(f"  {label}: refused before its 200 was read (<= 0 ms): {early} of {count}")


# --- the run --------------------------------------------------------------------------------


async def _gateway_phases(setup: Setup, args: argparse.Namespace) -> None:
    async with aiohttp.ClientSession() as session:
        working, seconds = await _load(session, setup, args)
        loaded = await _requests_answered(session, setup.metrics_url)
        say(f"loaded in {seconds:.1f} s: {args.cutoffs:,} user cut-offs, {args.denied:,} jtis "
            f"denied by jti, {working.denied} of the working set by value")  # fmt: skip
        async with GatewayClient(setup.service.url, authorization=setup.gateway_authorization,
                                 local_jwt=True) as gateway:  # fmt: skip
            synced = await _synced(gateway)
            assert gateway.jwt is not None
            state = gateway.jwt.revocations
            say(f"GatewayClient synced in {synced * 1000:.0f} ms: {len(state.denied):,} denied "
                f"jtis, {len(state.user_cutoffs):,} user cut-offs")  # fmt: skip
            before = await _requests_answered(session, setup.metrics_url)
            rates = await _local_checks(gateway, working, args)
            requests = await _requests_answered(session, setup.metrics_url) - before
            _print_local(rates, requests, loaded)
            await _latency(session, setup, gateway, args.revocations)
            await deny_list_sizes(setup.service, setup.admin, setup.redis_url, gateway, args.memory)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_jwt", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="warm checks per round")
    parser.add_argument("--jwts", type=int, default=10_000, help="the working set")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--denied", type=int, default=10_000, help="jtis denied beforehand")
    parser.add_argument("--cutoffs", type=int, default=1_000, help="user cut-offs beforehand")
    parser.add_argument("--revocations", type=int, default=50, help="timed, of each kind")
    parser.add_argument("--memory", type=int, default=2_000, help="jtis denied for (c)")
    args = parser.parse_args(argv)
    say(f"bench.gateway_jwt (target: >= {TARGET:,} warm local checks/s): {machine()}, loopback")
    keys = signing_keys()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, redis_server() as server:
        admin, gateway_authorization = _with_gateway_client(Path(tmp))
        jwks = Path(tmp) / "jwks.json"
        jwks.write_text(json.dumps(jwks_of(keys)))
        metrics_port = free_port()
        env = {"TOKENSTORE_JWT_JWKS_FILE": str(jwks), "TOKENSTORE_JWT_ISSUERS": ISSUER,
               "TOKENSTORE_METRICS_PORT": str(metrics_port)}  # fmt: skip
        with service_process(server.url, admin, extra_env=env) as service:
            metrics_url = f"http://{HOST}:{metrics_port}/metrics"
            setup = Setup(service, admin, gateway_authorization, metrics_url, server.url, keys)
            asyncio.run(_gateway_phases(setup, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
