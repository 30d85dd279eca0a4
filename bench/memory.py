"""Benchmark 4: Redis memory per live token (storage layout v2), and where the bytes go.

``python -m bench.memory [--tokens 1000000] [--mixes 1,5] [--levers]``

For each tokens-per-user mix, a fresh redis-server (with the memory settings we ship)
receives ``--tokens`` typical tokens (``bench.workload``: UUID user ids, 10 apps, 2-3 scopes,
client and device names, no metadata), written by ``bench.bulk.BulkIssuer`` exactly as the
service writes them.
It prints ``INFO memory`` used_memory delta / tokens, then a breakdown: ``MEMORY USAGE`` and
``OBJECT ENCODING`` of the user hashes (``h:{tag}``) of sampled tokens and of every app
bucket, and the keyspace entries (main and expires dict entries, table slots) from
``MEMORY STATS``; and the sizes of the stored records.

``--levers`` measures the same tokens again on a redis-server with other settings, each on
its own fresh server: see ``LEVERS`` (Redis settings only; nothing in ``service/`` changes).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from bench.bulk import BulkIssuer, check_same_layout
from bench.harness import admin_client, banner, info, machine, redis_server, say
from bench.workload import APPS, population, user_id
from service.keys import APP_BUCKETS, OWNER_FIELD, RID_BYTES
from service.service import TokenService
from service.settings import Settings
from service.store import TokenStore
from service.tokens import TokenId

TOKEN_TTL = 7 * 86400
TARGETS = {1: 350, 5: 220}  # bytes per live token, by tokens per user (issue: layout v2)
DICT_ENTRY = 24  # sizeof(dictEntry), what MEMORY USAGE adds per key
ROBJ = 16  # sizeof(robj), counted by MEMORY STATS in the main table's overhead
STABLE_FOR = 1.0  # seconds used_memory must stay put before it is read
STABLE_WITHIN = 30.0


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    change: str  # what a deployment would change to get this
    redis_args: tuple[str, ...] = ()


# What compose.yaml and deploy/overlays/bundled-redis/redis.conf ship (memory-related part).
SHIPPED = (
    "--hash-max-listpack-value", "256",
    "--hash-max-listpack-entries", "128",
    "--zset-max-listpack-entries", "2048",
)  # fmt: skip
BASELINE = Variant("as shipped", "(the Redis settings of compose.yaml and deploy/)", SHIPPED)
LEVERS = (
    Variant(
        "redis-server defaults",
        "no memory settings: hash-max-listpack-value 64 turns every user hash into a hash table",
        (),
    ),
)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Measured:
    variant: Variant
    per_user: int
    tokens: int
    bytes_total: int = 0
    keys: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    sample: list[TokenId] = field(default_factory=list)

    @property
    def per_token(self) -> float:
        return self.bytes_total / self.tokens


def _settled_memory(admin: redis.Redis) -> int:
    """used_memory once it has stopped moving (incremental rehashing, freed client buffers)."""
    deadline = time.monotonic() + STABLE_WITHIN
    last = int(info(admin, "memory")["used_memory"])
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = int(info(admin, "memory")["used_memory"])
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= STABLE_FOR:
            break
    return last


async def _write(url: str, measured: Measured, args: argparse.Namespace) -> None:
    settings = Settings(redis_url=url)
    store = TokenStore(settings)
    service = TokenService(store, settings)
    admin = admin_client(url)
    try:
        issuer = BulkIssuer(service, store, TOKEN_TTL)
        await issuer.open()
        probe = next(population(1, 1, seed=99))
        await check_same_layout(issuer, probe, user_id(random.Random(9)))
        await asyncio.sleep(0.1)
        before = _settled_memory(admin)
        keys_before = admin.dbsize()
        every = max(args.tokens // args.sample, 1)
        written = await issuer.issue(
            population(args.tokens, measured.per_user, seed=1),
            keep=lambda i: i % every == 0,
            progress_every=args.tokens // 4 if args.progress else 0,
        )
        await store.close()
        measured.bytes_total = _settled_memory(admin) - before
        measured.keys = admin.dbsize() - keys_before
        measured.sample = [tid for _, tid, _ in written]
        measured.stats = _breakdown(url, store, measured)
    finally:
        admin.close()
        await store.close()


def _pipelined(client: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(commands), 1000):
        pipe = client.pipeline(transaction=False)
        for command in commands[start : start + 1000]:
            cast(Any, pipe).execute_command(*command)
        out += pipe.execute()
    return out


def _usage(admin: redis.Redis, keys: list[str]) -> tuple[list[int], list[str]]:
    """MEMORY USAGE (exact: SAMPLES 0) and OBJECT ENCODING of each key."""
    commands = [
        command
        for key in keys
        for command in (("MEMORY", "USAGE", key, "SAMPLES", "0"), ("OBJECT", "ENCODING", key))
    ]
    flat = _pipelined(admin, commands)
    return [int(x or 0) for x in flat[0::2]], [str(e) for e in flat[1::2]]


def _size_class(n: int) -> int:
    """jemalloc's allocation for ``n`` bytes (small size classes: 4 per doubling)."""
    if n <= 16:
        return 8 if n <= 8 else 16
    step = max(16, 1 << (n - 1).bit_length() >> 3)
    return -(-n // step) * step


def _listpack_bytes(fields: dict[bytes, bytes]) -> int:
    """A listpack holding ``fields`` (every element string-encoded; an all-digit one would be
    stored as an integer, a little smaller): 6 B header, entries, 1 B end."""
    total = 7
    for element in (x for pair in fields.items() for x in pair):
        size = len(element) + (1 if len(element) < 64 else 2 if len(element) < 4096 else 5)
        total += size + (1 if size < 128 else 2 if size < 16384 else 3)
    return total


def _unseen(encoding: str, fields: int) -> int:
    """What MEMORY USAGE leaves out of a hash: for a hashtable, each field's dict entry is
    rounded 24 -> 32 B by jemalloc, and so is the dict struct (56 -> 64 B)."""
    return 8 * fields + 8 if encoding == "hashtable" else 0


def _breakdown(url: str, store: TokenStore, m: Measured) -> dict[str, Any]:
    keys = store.keys
    user_keys = sorted({keys.user(tid.tag) for tid in m.sample})
    bucket_keys = [keys.app_bucket(app, b) for app in APPS for b in range(APP_BUCKETS)]
    admin = admin_client(url)
    raw = redis.Redis.from_url(url, socket_timeout=60)
    try:
        user_usage, user_enc = _usage(admin, user_keys)
        hashes: list[dict[bytes, bytes]] = _pipelined(raw, [("HGETALL", k) for k in user_keys])
        bucket_usage, bucket_enc = _usage(admin, bucket_keys)
        bucket_sizes = _pipelined(admin, [("ZCARD", k) for k in bucket_keys])
        limits = {
            name: admin.config_get(name)[name]
            for name in ("hash-max-listpack-value", "hash-max-listpack-entries")
        }
        db = admin.memory_stats().get("db.0", {})
        dbsize = admin.dbsize()
    finally:
        admin.close()
        raw.close()
    owner = OWNER_FIELD.encode()
    records = [v for h in hashes for k, v in h.items() if len(k) == RID_BYTES]
    return {
        "user_usage": sum(user_usage),
        "user_unseen": sum(map(_unseen, user_enc, (len(h) for h in hashes))),
        "user_enc": Counter(user_enc),
        "listpacks": [
            (_listpack_bytes(h), usage - DICT_ENTRY - ROBJ - _size_class(len(key) + 4))
            for h, usage, enc, key in zip(hashes, user_usage, user_enc, user_keys, strict=True)
            if enc == "listpack"
        ],
        "key_name": statistics.fmean(len(key) for key in user_keys),
        "record_sizes": [len(r) for r in records],
        "owner_sizes": [len(h.get(owner, b"")) for h in hashes],
        "other_fields": Counter(k.decode() for h in hashes for k in h if len(k) != RID_BYTES),
        "limits": limits,
        "bucket_total": sum(bucket_usage),
        "bucket_enc": Counter(e for e in bucket_enc if e != "None"),
        "bucket_sizes": [int(n) for n in bucket_sizes if n],
        "main": int(db.get("overhead.hashtable.main", 0)),
        "expires": int(db.get("overhead.hashtable.expires", 0)),
        "dbsize": dbsize,
    }


# --- reporting -------------------------------------------------------------------------------


def _rows(m: Measured) -> tuple[list[tuple[str, float]], float]:
    """The per-token parts, and what keyspace entries cost per key."""
    s = m.stats
    n, keys = m.tokens, s["dbsize"]
    # MEMORY USAGE counts a key's name, robj, value and a 24 B dict entry. Not counted: the
    # entry's jemalloc rounding (24 -> 32), the expires-dict entry (32) and each key's share
    # of both tables' slots (8 B each); MEMORY STATS gives the slot counts.
    main_slots = max(s["main"] - keys * (DICT_ENTRY + ROBJ), 0)
    expires_slots = max(s["expires"] - keys * DICT_ENTRY, 0)
    hidden = 8 + 32 + (main_slots + expires_slots) / keys
    entries = DICT_ENTRY + hidden
    buckets = len(s["bucket_sizes"])
    users = m.keys - buckets  # every key written is a user hash or an app bucket
    sampled = len(s["owner_sizes"])
    per_hash = (s["user_usage"] + s["user_unseen"] - DICT_ENTRY * sampled) / sampled
    tokens_per_user = n / users
    rows = [
        (f"user hash ({tokens_per_user:.2f} tokens each): value + robj + key name", per_hash),
        ("user hash keyspace entries (main + expires + slots)", entries),
    ]
    per_token = [(label, value * users / n) for label, value in rows]
    bucket_label = f"app buckets ({buckets} keys, incl. keyspace entries)"
    per_token.append((bucket_label, (s["bucket_total"] + hidden * buckets) / n))
    return per_token, entries


def _report_breakdown(m: Measured) -> None:
    s = m.stats
    rows, entries = _rows(m)
    accounted = sum(v for _, v in rows)
    say("  where the bytes go (per token):")
    for label, value in rows:
        say(f"    {label:60s} {value:7.1f} B")
    say(f"    {'sum of the parts':60s} {accounted:7.1f} B")
    say(f"    {'measured (used_memory delta / tokens)':60s} {m.per_token:7.1f} B")
    records = s["record_sizes"]
    say(
        f"  user hashes: {len(s['owner_sizes'])} sampled, MEMORY USAGE mean "
        f"{s['user_usage'] / len(s['owner_sizes']):.0f} B, encodings {dict(s['user_enc'])} "
        f"({', '.join(f'{k} {v}' for k, v in s['limits'].items())})"
    )
    if s["listpacks"]:
        raw_lp, allocated = zip(*s["listpacks"], strict=True)
        say(
            f"  a listpack user hash: listpack {statistics.fmean(raw_lp):.1f} B (allocated"
            f" {statistics.fmean(allocated):.1f} B; by jemalloc class:"
            f" {dict(sorted(Counter(allocated).items()))}), robj {ROBJ} B, key name"
            f" {s['key_name']:.0f} characters ({_size_class(round(s['key_name']) + 4)} B)"
        )
    owner = statistics.fmean(s["owner_sizes"])
    say(
        f"  records: {len(records)}, bytes mean {statistics.fmean(records):.1f} / min "
        f"{min(records)} / max {max(records)}; owner field u {owner:.0f} B; other fields "
        f"{dict(s['other_fields'])}"
    )
    sizes = sorted(s["bucket_sizes"])
    say(f"  app buckets: encodings {dict(s['bucket_enc'])}")
    if sizes:
        say(
            f"  app bucket members: min {sizes[0]} / median {statistics.median(sizes):.0f} / "
            f"max {sizes[-1]} (zset-max-listpack-entries: 128 by default)"
        )
    keys = s["dbsize"]
    say(
        f"  keys: {keys:,} ({m.keys / m.tokens:.2f} written per token); keyspace entries cost"
        f" {entries:.0f} B per key (dict entry 32 + expires entry 32 + slots {entries - 64:.0f})"
    )


def _measure(variant: Variant, per_user: int, args: argparse.Namespace) -> Measured:
    measured = Measured(variant, per_user, args.tokens)
    with redis_server(*variant.redis_args) as server:
        asyncio.run(_write(server.url, measured, args))
    return measured


def _target(per_user: int) -> str:
    target = TARGETS.get(per_user)
    return f"target <= {target} B" if target else "no target"


def run(args: argparse.Namespace) -> None:
    say(f"bench.memory: {machine()}")
    mixes = [int(x) for x in args.mixes.split(",")]
    results: list[Measured] = []
    for variant in (BASELINE, *(LEVERS if args.levers else ())):
        for per_user in mixes:
            banner(
                f"{args.tokens:,} tokens, {per_user} token(s) per user, {len(APPS)} apps;"
                f" redis: {variant.name}"
            )
            m = _measure(variant, per_user, args)
            results.append(m)
            say(
                f"  used_memory delta / tokens = {m.per_token:.1f} B per token"
                f"   ({_target(per_user)})   [{m.bytes_total / 2**20:,.1f} MiB, {m.keys:,} keys]"
            )
            _report_breakdown(m)
    banner("summary")
    for m in results:
        say(
            f"  {m.variant.name:28s} {m.per_user} token(s)/user: {m.per_token:6.1f} B per live"
            f" token ({_target(m.per_user)}); user hashes {dict(m.stats['user_enc'])}"
        )
    for variant in LEVERS if args.levers else ():
        say(f"  {variant.name}: {variant.change}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--mixes", default="1,5", help="tokens per user, comma-separated")
    parser.add_argument("--sample", type=int, default=2000, help="tokens sampled for MEMORY USAGE")
    parser.add_argument("--levers", action="store_true", help="also measure with LEVERS")
    parser.add_argument("--progress", action="store_true", help="print write progress")
    args = parser.parse_args(argv)
    if not 1000 <= args.tokens <= 20_000_000 or not 10 <= args.sample <= 100_000:
        parser.error("tokens 1000-20000000, sample 10-100000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
