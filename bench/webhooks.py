"""Signed webhooks: how long a revocation takes to reach a receiver, and how many events one
webhook gets per second (one at a time, in stream order, from the process holding its lease).

``python -m bench.webhooks [--events 500] [--replicas 1]``

One redis-server, ``--replicas`` service processes sharing it and one webhook (one of them
delivers, the others stand by), a receiver in this process (aiohttp, on loopback) that
verifies every signature with ``standardwebhooks`` and answers 204. ``--events`` tokens are
revoked one by one through HTTP, as fast as they answer; it prints the latency from each
event's ``at`` to its arrival (p50, p99, max), the delivery rate over the burst, and the
events missing or answered 2xx twice (both must be 0).
Then the same number of events is revoked while no process delivers (a process without the
webhook), and the replicas are started again: how fast they drain that backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from redis_servers import free_port
from standardwebhooks.webhooks import Webhook as Verifier

from bench.harness import (
    HOST,
    banner,
    machine,
    redis_server,
    say,
    service_process,
    write_clients_file,
)


class Receiver:
    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self._verifier = Verifier(secret)
        self.arrivals: dict[str, list[float]] = {}  # token id -> arrival times (epoch s)
        self.at: dict[str, int] = {}  # token id -> the event's `at` (epoch ms)

    async def hook(self, request: web.Request) -> web.Response:
        body = self._verifier.verify(await request.read(), dict(request.headers))
        for token_id in body["data"]["ids"]:
            self.arrivals.setdefault(token_id, []).append(time.time())
            self.at[token_id] = body["data"]["at"]
        return web.Response(status=204)


async def run(events: int, replicas: int) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    receiver = Receiver(secret)
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, receiver.port).start()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as temp, redis_server() as redis:
        directory = Path(temp)
        secret_file = directory / "secret"
        secret_file.write_text(secret)
        os.chmod(secret_file, 0o600)
        hook = {"id": "bench", "url": f"http://{HOST}:{receiver.port}/hook",
                "secret_file": str(secret_file), "events": ["token"], "apps": ["*"],
                "format": "standard"}  # fmt: skip
        hooks = directory / "webhooks.json"
        hooks.write_text(json.dumps({"webhooks": [hook]}))
        credentials = write_clients_file(directory)
        env = {"TOKENSTORE_WEBHOOKS_FILE": str(hooks)}
        processes = [
            service_process(redis.url, credentials, name=f"service{n}", extra_env=env)
            for n in range(replicas)
        ]
        for process in processes:
            process.start()
        try:
            await _burst(processes[0].url, credentials.headers, receiver, events)
        finally:
            for process in processes:
                process.stop()
        # A backlog: events written while no process delivers, then drained.
        receiver.arrivals.clear()
        with service_process(redis.url, credentials, name="plain") as plain:
            ids = await _revoke(plain.url, credentials.headers, events)
        processes = [
            service_process(redis.url, credentials, name=f"service{n}", extra_env=env)
            for n in range(replicas)
        ]
        try:
            for process in processes:
                process.start()
            await _wait_for(receiver, events)
        finally:
            for process in processes:
                process.stop()
        arrivals = sorted(times[0] for times in receiver.arrivals.values())
        took = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        missing = len(set(ids) - set(receiver.arrivals))
        twice = sum(1 for times in receiver.arrivals.values() if len(times) > 1)
        rate = len(arrivals) / max(took, 1e-9)
        say(f"backlog of {events} drained in {took:.2f} s ({rate:.0f} events/s, first to last "
            f"arrival); missing {missing}, delivered twice {twice}")  # fmt: skip
    await runner.cleanup()


async def _revoke(url: str, headers: dict[str, str], events: int) -> list[str]:
    async with aiohttp.ClientSession(url, headers=headers) as session:
        ids = []
        for n in range(events):
            body = {"user_id": f"user{n}", "app_id": "web"}
            async with session.post("/v1/tokens", json=body) as response:
                ids.append((await response.json())["id"])
        for token_id in ids:
            async with session.delete(f"/v1/tokens/{token_id}") as response:
                assert response.status == 200
    return ids


async def _wait_for(receiver: Receiver, events: int) -> None:
    deadline = time.monotonic() + 120
    while len(receiver.arrivals) < events and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _burst(url: str, headers: dict[str, str], receiver: Receiver, events: int) -> None:
    async with aiohttp.ClientSession(url, headers=headers) as session:
        ids = []
        for n in range(events):
            body = {"user_id": f"user{n}", "app_id": "web"}
            async with session.post("/v1/tokens", json=body) as response:
                ids.append((await response.json())["id"])
        started = time.time()
        for token_id in ids:
            async with session.delete(f"/v1/tokens/{token_id}") as response:
                assert response.status == 200
        revoked = time.time()
    await _wait_for(receiver, events)
    done = max((t[0] for t in receiver.arrivals.values()), default=started)
    latencies = sorted(
        (times[0] - receiver.at[token_id] / 1000) * 1000
        for token_id, times in receiver.arrivals.items()
    )
    missing = len(set(ids) - set(receiver.arrivals))
    twice = sum(1 for times in receiver.arrivals.values() if len(times) > 1)
    say(f"revoked {events} tokens in {revoked - started:.2f} s "
        f"({events / (revoked - started):.0f}/s through HTTP)")  # fmt: skip
    say(f"delivered {len(receiver.arrivals)} events in {done - started:.2f} s "
        f"({len(receiver.arrivals) / max(done - started, 1e-9):.0f}/s)")  # fmt: skip
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        say(f"latency from the event to the receiver: p50 {statistics.median(latencies):.1f} ms, "
            f"p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")  # fmt: skip
    say(f"missing {missing}, delivered twice {twice}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    banner(f"webhooks: {args.events} revocations, {args.replicas} replica(s); {machine()}")
    asyncio.run(run(args.events, args.replicas))


if __name__ == "__main__":
    main()
