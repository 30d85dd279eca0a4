"""Memory per denied jti in a ``GatewayClient``'s local JWT deny-list, beside Redis's (part
(c) of ``bench.gateway_jwt``): ``sys.getsizeof`` of the live deny-list, and ``tracemalloc`` of
a fresh ``JwtRevocations`` fed ``jwt`` events in the feed's wire form."""

from __future__ import annotations

import asyncio
import sys
import time
import tracemalloc
import uuid

import orjson

from bench.harness import Credentials, HttpProcess, banner, say
from bench.jwt import ISSUER, deny_list_memory
from service.client import GatewayClient
from service.clock import now_ms
from service.events import EventKind, RevocationEvent
from service.gateway_jwt import JwtRevocations

TIMEOUT = 30.0


def deep_size(table: dict[tuple[str, str], int]) -> int:
    """``sys.getsizeof`` of a dict, its key tuples, their strings and its values, each object
    once (an issuer string shared by many keys counts once)."""
    seen: set[int] = set()
    total = sys.getsizeof(table)
    for key, value in table.items():
        for part in (key, *key, value):
            if id(part) not in seen:
                seen.add(id(part))
                total += sys.getsizeof(part)
    return total


def model_bytes(count: int, issuer: str | None) -> float:
    """Bytes per jti held by a fresh ``JwtRevocations`` after ``count`` ``jwt`` events in the
    feed's wire form, parsed and applied as ``GatewayClient`` does (tracemalloc). ``issuer``
    None: denied by jti (every configured issuer: one shared string); else each event carries
    its own copy, as a denial by value does."""
    now = now_ms()
    wires = []
    for _ in range(count):
        jti = uuid.uuid4().hex
        event = RevocationEvent(EventKind.JWT, "", ids=(jti,), issuer=issuer,
                                expires_at=now + 3_600_000, at=now)  # fmt: skip
        wires.append(orjson.dumps({**event.feed_body(), "ids": [jti]}))
    revocations = JwtRevocations((ISSUER,), max_ttl_s=86_400, leeway_s=0)
    tracemalloc.start()
    for wire in wires:
        parsed = RevocationEvent.from_feed("jwt", wire)
        assert parsed is not None
        revocations.apply(parsed, now)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if len(revocations.denied) != count:
        raise RuntimeError("the model deny-list lost entries")
    return held / count


async def deny_list_sizes(
    service: HttpProcess, admin: Credentials, redis_url: str, gateway: GatewayClient, count: int
) -> None:
    """Denies ``count`` jtis through the API (``bench.jwt.deny_list_memory`` measures Redis),
    waits until ``gateway`` holds them, and prints the bytes per jti on both sides."""
    assert gateway.jwt is not None
    revocations = gateway.jwt.revocations
    size, entries = deep_size(revocations.denied), len(revocations.denied)
    key_bytes, growth = await asyncio.to_thread(deny_list_memory, service, admin, redis_url, count)
    deadline = time.perf_counter() + TIMEOUT
    while len(revocations.denied) < entries + count:
        if time.perf_counter() > deadline:
            raise RuntimeError("the gateway did not receive every denial")
        await asyncio.sleep(0.01)
    total, held = deep_size(revocations.denied), len(revocations.denied)
    rows = [
        (f"gateway, live deny-list, average of its {held:,} entries", total / held),
        (f"gateway, live deny-list, growth by these {count:,}", (total - size) / count),
    ]
    for model in (10_000, 100_000):
        rows.append((f"gateway, {model:,} denied by jti (tracemalloc)", model_bytes(model, None)))
    rows.append(("gateway, 10,000 denied by value (tracemalloc)", model_bytes(10_000, ISSUER)))
    banner(f"(c) memory per denied jti; Redis: used_memory growth {growth:.0f} B (deny key + "
           f"event in the stream), MEMORY USAGE of a deny key {key_bytes} B")  # fmt: skip
    say(f"{'':56} {'B/jti':>6} {'/growth':>8} {'/key':>6}")
    for label, value in rows:
        say(f"{label:56} {value:6.0f} {value / growth:7.2f}x {value / key_bytes:5.2f}x")
