"""Benchmark: revocation -> every subscribed GatewayClient has dropped the cached answer.

``python -m bench.gateway_feed [--clients 8] [--revocations 200]``

Starts a redis-server and one ``tokenstore serve`` process (cache max-age 60 s, so only the
feed can remove an answer in time), then ``--clients`` GatewayClients in this process, each
following ``/v1/events``. For each revocation: issue a token, have every client check it (now
cached), then ``DELETE /v1/tokens/{id}`` and time, from just before that request, until each
client's cache no longer holds the answer (polled every 0.2 ms). Prints p50/p99/max of the
time until the last client dropped it (the bound a gateway fleet gets) and until each client
did, and how long the DELETE call itself took.

All clients share one event loop here, so one client's parsing delays the next: a fleet of
separate gateway processes would see the per-client figure, not more.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import aiohttp

from bench.gateway_common import Tokenstore, percentile, tokenstore
from service.client import GatewayClient

POLL = 0.0002
TIMEOUT = 5.0


async def _wait_connected(clients: Sequence[GatewayClient]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not all(c.feed_connected for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("clients did not connect to the feed")
        await asyncio.sleep(0.01)


async def _drop_times(clients: Sequence[GatewayClient], token: str, started: float) -> list[float]:
    """Milliseconds from ``started`` until each client's cache lost ``token``."""
    dropped: dict[int, float] = {}
    deadline = started + TIMEOUT
    while len(dropped) < len(clients):
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError(f"{len(clients) - len(dropped)} clients still hold the token")
        for n, client in enumerate(clients):
            if n not in dropped and client.cached(token) is None:
                dropped[n] = (now - started) * 1000
        await asyncio.sleep(POLL)
    return list(dropped.values())


async def _one(service: Tokenstore, session: aiohttp.ClientSession,
               clients: Sequence[GatewayClient], n: int) -> tuple[list[float], float]:  # fmt: skip
    body = await service.issue(session, f"user-{n}", "bench")
    for client in clients:
        if await client.check(body["token"]) is None:
            raise RuntimeError("a fresh token was not live")
    started = time.perf_counter()
    watch = asyncio.create_task(_drop_times(clients, body["token"], started))
    await service.revoke(session, body["id"])
    call_ms = (time.perf_counter() - started) * 1000
    return await watch, call_ms


async def run(clients_count: int, revocations: int) -> None:
    env = {"TOKENSTORE_CACHE_MAX_AGE": "60", "TOKENSTORE_FEED_HEARTBEAT": "5"}
    with tokenstore(env) as service:
        clients = [
            GatewayClient(service.url, authorization=service.authorization)
            for _ in range(clients_count)
        ]
        async with aiohttp.ClientSession() as session:
            for client in clients:
                await client.start()
            try:
                await _wait_connected(clients)
                for n in range(20):  # warm-up: connections, scripts, code paths
                    await _one(service, session, clients, -n - 1)
                last, each, calls = [], [], []
                for n in range(revocations):
                    times, call_ms = await _one(service, session, clients, n)
                    last.append(max(times))
                    each += times
                    calls.append(call_ms)
            finally:
                for client in clients:
                    await client.close()
    print(f"{revocations} revocations, {clients_count} GatewayClients following /v1/events")
    for name, values in [("last client dropped", last), ("each client dropped", each),
                         ("DELETE call returned", calls)]:  # fmt: skip
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"  {name:22} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   max {max(values):6.2f} ms")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--revocations", type=int, default=200)
    args = parser.parse_args(argv)
    asyncio.run(run(args.clients, args.revocations))


if __name__ == "__main__":
    main()
