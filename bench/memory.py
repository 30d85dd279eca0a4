"""Benchmark 4: Redis memory per live token, and what each part of the layout costs.

``python -m bench.memory [--tokens 1000000] [--mixes 1,5] [--levers]``

For each tokens-per-user mix, a fresh redis-server receives ``--tokens`` typical tokens
(``bench.workload``: UUID user ids, 10 apps, 2-3 scopes, client and device names, no
metadata), written by ``bench.bulk.BulkIssuer`` exactly as the service writes them. It
prints ``INFO memory`` used_memory delta / tokens (target <= 400 B), then a breakdown:
``MEMORY USAGE`` of sampled token hashes and user indexes and of every app bucket, the
keyspace entries (main and expires dict entries, table slots) from ``MEMORY STATS``, and the
``OBJECT ENCODING`` of every sampled key and every bucket.

``--levers`` then measures layout changes side by side, each on its own fresh redis-server
with the same tokens: see ``LEVERS``. They are prototypes applied in this process only
(patched functions, edited script text, Redis settings); nothing in ``service/`` changes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, cast
from unittest import mock

import redis

from bench.bulk import BulkIssuer, check_same_layout
from bench.harness import admin_client, banner, info, machine, redis_server, say
from bench.workload import APPS, Spec, population, user_id
from service import tokens
from service.keys import APP_BUCKETS
from service.records import TokenDraft
from service.service import TokenService
from service.settings import Settings
from service.store import TokenStore, now_ms
from service.tokens import TokenId

TOKEN_TTL = 7 * 86400
DICT_ENTRY = 24  # sizeof(dictEntry), what MEMORY USAGE adds per key
ROBJ = 16  # sizeof(robj), counted by MEMORY STATS in the main table's overhead
STABLE_FOR = 1.0  # seconds used_memory must stay put before it is read
STABLE_WITHIN = 30.0


# --- layout variants (levers) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    change: str  # what the service would change to get this layout
    key_prefix: str = "ts:"
    digest_bytes: int = 32
    uuid_binary: bool = False  # a user id that is a canonical UUID stored as its 16 bytes
    script_edits: tuple[tuple[str, str], ...] = ()  # (old, new) text edits of issue.lua
    redis_args: tuple[str, ...] = ()
    apps: tuple[str, ...] = APPS
    per_user_hash: bool = False  # the structural prototype: see PerUserHashWriter

    @property
    def service_layout(self) -> bool:
        """True if only names or Redis settings differ from what the service writes."""
        changed = self.script_edits or self.uuid_binary or self.per_user_hash
        return not changed and self.digest_bytes == 32

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        with contextlib.ExitStack() as patches:
            if self.digest_bytes != 32:
                size = self.digest_bytes

                def digest(value: str) -> bytes:
                    return hashlib.sha256(value.encode()).digest()[:size]

                patches.enter_context(mock.patch.object(tokens, "digest", digest))
            if self.uuid_binary:
                patches.enter_context(mock.patch.object(TokenDraft, "redis_fields", _uuid_fields))
            yield


_original_fields = TokenDraft.redis_fields


def _uuid_fields(draft: TokenDraft, token_digest: bytes) -> list[str | bytes]:
    """TokenDraft.redis_fields, but a canonical UUID user id goes in field ``U`` as 16 bytes."""
    pairs = _original_fields(draft, token_digest)
    with contextlib.suppress(ValueError):
        if str(parsed := uuid.UUID(draft.user_id)) == draft.user_id:
            pairs[0:2] = ["U", parsed.bytes]
    return pairs


BASELINE = Variant("baseline", "(the service as it is)")
_D16 = "store sha256(token)[:16] in field h (service/tokens.py digest()); still 128 bits"
_LIFETIME = (("'ex', expires_s", "'ex', math.floor(tonumber(ARGV[2]) / 1000)"),)
LEVERS = (
    BASELINE,
    Variant("no key prefix", "TOKENSTORE_KEY_PREFIX='' (3 bytes less per key name)", key_prefix=""),
    Variant("digest 16 B", _D16, digest_bytes=16),
    Variant(
        "digest 16 B + lifetime",
        "and in field ex the lifetime in seconds, not the expiry in ms (issue.lua, records.py)",
        digest_bytes=16,
        script_edits=_LIFETIME,
    ),
    Variant(
        "digest 16 B + lifetime + UUID as 16 B",
        "and a user id that is a canonical UUID stored as its 16 bytes (field U, records.py)",
        digest_bytes=16,
        script_edits=_LIFETIME,
        uuid_binary=True,
    ),
    Variant(
        "prototype: one hash per user",
        "structural: a user's tokens are fields (rid -> packed record, 16 B digest) of one hash"
        " per user that expires with its newest token; needs hash-max-listpack-value 256",
        redis_args=("--hash-max-listpack-value", "256"),
        per_user_hash=True,
    ),
)
BIG_APP_LEVERS = (
    Variant("one app", "(the service as it is, every token in one app)", apps=APPS[:1]),
    Variant(
        "one app, zset-max-listpack-entries 2048",
        "redis.conf zset-max-listpack-entries 2048 (app buckets of apps up to ~2M users stay"
        " listpack; or more buckets)",
        redis_args=("--zset-max-listpack-entries", "2048"),
        apps=APPS[:1],
    ),
)


class PerUserHashWriter:
    """The structural prototype, for its memory only: one hash per user, a field per token.

    ``ts:u:{tag}`` holds ``rid -> record`` (16 B digest, created us and expires ms as 8 B
    each, then user, app, type, scopes, client and device names, NUL-separated) and expires
    with the user's newest token; app buckets are the service's own (``index_app.lua``).
    Expired fields would be pruned by the scripts that write or read the hash.
    """

    def __init__(self, issuer: BulkIssuer) -> None:
        self.issuer = issuer

    async def issue(self, specs: Iterator[Spec], keep: Callable[[int], bool]) -> list[TokenId]:
        client = await self.issuer.service.store.client()
        keys = self.issuer.service.store.keys
        tag_key = await self.issuer.service.store.tag_key()
        sha = await cast(Any, client).script_load(
            (files("service") / "lua" / "index_app.lua").read_text()
        )
        kept: list[TokenId] = []
        ttl_ms = self.issuer.ttl_ms
        for start, chunk in _chunks(specs, 1000):
            pipe = cast(Any, client).pipeline(transaction=False)
            for offset, spec in enumerate(chunk):
                tag = tokens.user_tag(tag_key, spec.user_id)
                now = now_ms()
                expires = now + ttl_ms
                pipe.evalsha(sha, 1, keys.app_bucket_of(spec.app_id, tag), tag, expires + 1000, now)
                tid = tokens.new_id(tag)
                digest = tokens.digest(tokens.mint(tid))[:16]
                text = (spec.user_id, spec.app_id, spec.type, " ".join(spec.scopes))
                names = "\0".join((*text, spec.client_name, spec.device_name)).encode()
                record = digest + (now * 1000).to_bytes(8, "big") + expires.to_bytes(8, "big")
                user_key = keys.user_index(tag)
                pipe.hset(user_key, tid.rid, record + names)
                pipe.pexpireat(user_key, expires, nx=True)
                pipe.pexpireat(user_key, expires, gt=True)
                if keep(start + offset):
                    kept.append(tid)
            await pipe.execute()
        return kept


def _chunks(items: Iterator[Spec], size: int) -> Iterator[tuple[int, list[Spec]]]:
    start = 0
    while chunk := list(itertools.islice(items, size)):
        yield start, chunk
        start += len(chunk)


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
    variant = measured.variant
    settings = Settings(redis_url=url, key_prefix=variant.key_prefix)
    store = TokenStore(settings)
    service = TokenService(store, settings)
    admin = admin_client(url)
    try:
        issuer = BulkIssuer(service, TOKEN_TTL, script_edits=variant.script_edits)
        with variant.applied():
            await issuer.open()
            if variant.service_layout:
                probe = next(population(1, 1, variant.apps, seed=99))
                await check_same_layout(issuer, probe, user_id(random.Random(9)))
            await asyncio.sleep(0.1)
            before = _settled_memory(admin)
            keys_before = admin.dbsize()
            every = max(args.tokens // args.sample, 1)
            specs = population(args.tokens, measured.per_user, variant.apps, seed=1)
            if variant.per_user_hash:
                kept = await PerUserHashWriter(issuer).issue(specs, lambda i: i % every == 0)
            else:
                written = await issuer.issue(
                    specs,
                    keep=lambda i: i % every == 0,
                    progress_every=args.tokens // 4 if args.progress else 0,
                )
                kept = [tid for _, tid, _ in written]
        await store.close()
        measured.bytes_total = _settled_memory(admin) - before
        measured.keys = admin.dbsize() - keys_before
        measured.sample = kept
        measured.stats = _breakdown(url, service, measured)
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


def _usage(admin: redis.Redis, keys: list[str]) -> tuple[list[int], Counter[str]]:
    """MEMORY USAGE (exact: SAMPLES 0) and OBJECT ENCODING of each key."""
    commands = [
        command
        for key in keys
        for command in (("MEMORY", "USAGE", key, "SAMPLES", "0"), ("OBJECT", "ENCODING", key))
    ]
    flat = _pipelined(admin, commands)
    return [int(x or 0) for x in flat[0::2]], Counter(str(e) for e in flat[1::2] if e)


def _breakdown(url: str, service: TokenService, m: Measured) -> dict[str, Any]:
    keys = service.store.keys
    token_keys = [] if m.variant.per_user_hash else [keys.token(tid) for tid in m.sample]
    user_keys = sorted({keys.user_index(tid.tag) for tid in m.sample})
    bucket_keys = [keys.app_bucket(app, b) for app in m.variant.apps for b in range(APP_BUCKETS)]
    admin = admin_client(url)
    raw = redis.Redis.from_url(url, socket_timeout=60)
    try:
        token_usage, token_enc = _usage(admin, token_keys)
        user_usage, user_enc = _usage(admin, user_keys)
        size = "HLEN" if m.variant.per_user_hash else "ZCARD"
        user_sizes = _pipelined(admin, [(size, k) for k in user_keys])
        bucket_usage, bucket_enc = _usage(admin, bucket_keys)
        bucket_sizes = _pipelined(admin, [("ZCARD", k) for k in bucket_keys])
        fields = _pipelined(raw, [("HGETALL", k) for k in token_keys[:200]])
        db = admin.memory_stats().get("db.0", {})
        dbsize = admin.dbsize()
    finally:
        admin.close()
        raw.close()
    return {
        "token_usage": statistics.fmean(token_usage or [0]),
        "token_enc": token_enc,
        "user_usage": statistics.fmean(user_usage),
        "user_size": statistics.fmean(user_sizes),
        "user_enc": user_enc,
        "bucket_total": sum(bucket_usage),
        "bucket_enc": bucket_enc,
        "bucket_sizes": [int(n) for n in bucket_sizes if n],
        "main": int(db.get("overhead.hashtable.main", 0)),
        "expires": int(db.get("overhead.hashtable.expires", 0)),
        "dbsize": dbsize,
        "fields": fields,
    }


# --- reporting -------------------------------------------------------------------------------


def _field_sizes(rows: list[dict[bytes, bytes]]) -> str:
    sizes: dict[str, list[int]] = {}
    for row in rows:
        for name, value in row.items():
            sizes.setdefault(name.decode(), []).append(len(value))
    return ", ".join(f"{n} {statistics.fmean(v):.0f}" for n, v in sizes.items())


def _report_breakdown(m: Measured) -> None:
    s = m.stats
    n, keys = m.tokens, s["dbsize"]
    # MEMORY USAGE counts a key's name, robj, value and a 24 B dict entry. Not counted: the
    # entry's jemalloc rounding (24 -> 32), the expires-dict entry (32) and each key's share
    # of both tables' slots (8 B each); MEMORY STATS gives the slot counts.
    main_slots = max(s["main"] - keys * (DICT_ENTRY + ROBJ), 0)
    expires_slots = max(s["expires"] - keys * DICT_ENTRY, 0)
    hidden = 8 + 32 + (main_slots + expires_slots) / keys
    entries = DICT_ENTRY + hidden
    token = s["token_usage"] - DICT_ENTRY
    user = s["user_usage"] - DICT_ENTRY
    users = n / s["user_size"]
    buckets = len(s["bucket_sizes"])
    rows = [
        ("token hash: listpack + robj + key name", token),
        ("token keyspace entries (main + expires + slots)", entries),
        (f"user index ({s['user_size']:.1f} tokens/user): value + key", user * users / n),
        ("user index keyspace entries", entries * users / n),
        (
            f"app buckets ({buckets} keys, incl. keyspace entries)",
            (s["bucket_total"] + hidden * buckets) / n,
        ),
    ]
    accounted = sum(v for _, v in rows)
    say("  where the bytes go (per token):")
    for label, value in rows:
        say(f"    {label:52s} {value:7.1f} B")
    say(f"    {'sum of the parts':52s} {accounted:7.1f} B")
    say(f"    {'measured (used_memory delta / tokens)':52s} {m.per_token:7.1f} B")
    sizes = sorted(s["bucket_sizes"])
    say(
        f"  encodings: token hashes {dict(s['token_enc'])}; user indexes {dict(s['user_enc'])}; "
        f"app buckets {dict(s['bucket_enc'])}"
    )
    if sizes:
        say(
            f"  app bucket members: min {sizes[0]} / median {statistics.median(sizes):.0f} / "
            f"max {sizes[-1]} (zset-max-listpack-entries: 128 unless the variant says)"
        )
    say(f"  token hash field sizes (bytes, mean): {_field_sizes(s['fields'])}")
    say(
        f"  keys: {keys:,} ({keys / n:.2f} per token); keyspace entries cost {entries:.0f} B per"
        f" key (dict entry 32 + expires entry 32 + slots {entries - 64:.0f})"
    )


def _measure(variant: Variant, per_user: int, args: argparse.Namespace) -> Measured:
    measured = Measured(variant, per_user, args.tokens)
    with redis_server(*variant.redis_args) as server:
        asyncio.run(_write(server.url, measured, args))
    return measured


def _encodings(m: Measured) -> str:
    s = m.stats
    values = dict(s["user_enc"] if m.variant.per_user_hash else s["token_enc"])
    return f"{'user hashes' if m.variant.per_user_hash else 'tokens'} {values}"


def _levers(args: argparse.Namespace, mixes: list[int], base: dict[int, Measured]) -> None:
    banner(f"levers, side by side ({args.tokens:,} tokens each, a fresh redis-server each)")
    for per_user in mixes:
        reference = base[per_user].per_token
        for variant in LEVERS[1:]:
            m = _measure(variant, per_user, args)
            say(
                f"  {per_user}/user  {variant.name:40s} {m.per_token:6.1f} B/token"
                f"  ({m.per_token - reference:+6.1f} vs baseline; {_encodings(m)})"
            )
    per_user = mixes[0]
    big = [_measure(v, per_user, args) for v in BIG_APP_LEVERS]
    for m in big:
        sizes = m.stats["bucket_sizes"]
        say(
            f"  {per_user}/user  {m.variant.name:40s} {m.per_token:6.1f} B/token"
            f"  ({m.per_token - big[0].per_token:+6.1f}; buckets {dict(m.stats['bucket_enc'])},"
            f" {statistics.median(sizes):.0f} members each)"
        )
    banner("what each lever changes")
    for variant in (*LEVERS[1:], *BIG_APP_LEVERS[1:]):
        say(f"  {variant.name}: {variant.change}")


def run(args: argparse.Namespace) -> None:
    say(f"bench.memory: {machine()}")
    mixes = [int(x) for x in args.mixes.split(",")]
    base: dict[int, Measured] = {}
    for per_user in mixes:
        banner(f"{args.tokens:,} tokens, {per_user} token(s) per user, {len(APPS)} apps")
        m = base[per_user] = _measure(BASELINE, per_user, args)
        say(
            f"  used_memory delta / tokens = {m.per_token:.1f} B per token   (target <= 400 B)"
            f"   [{m.bytes_total / 2**20:,.1f} MiB, {m.keys:,} keys]"
        )
        _report_breakdown(m)
    if args.levers:
        _levers(args, mixes, base)
    banner("summary")
    for per_user, m in base.items():
        say(f"  {per_user} token(s)/user: {m.per_token:.1f} B per live token (target <= 400 B)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--mixes", default="1,5", help="tokens per user, comma-separated")
    parser.add_argument("--sample", type=int, default=2000, help="tokens sampled for MEMORY USAGE")
    parser.add_argument("--levers", action="store_true", help="also measure the layout levers")
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
