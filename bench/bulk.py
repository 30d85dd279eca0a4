"""Writing many tokens fast, exactly as the service writes them (storage layout v2).

``BulkIssuer`` replays ``TokenService.issue`` for a minted token: the same validation
(``TokenService.draft``), the same token id and value (``TokenStore.user_tag``,
``service.tokens``), the same key names (``TokenStore.keys``) and the same two scripts with
the same arguments, in the same order: ``index_app.lua`` (``AppIndex.add_user``) then
``issue.lua`` with ``lib.lua`` in front (``TokenStore.issue``), their text taken from
``service.redis_ops``, where the store loads them. Only the round trips differ: many tokens
share one pipeline (standalone Redis only). ``check_same_layout`` compares what it writes with
what ``TokenService.issue`` writes, key by key, so a change in the service that the replay
misses stops the benchmark.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from redis.asyncio import Redis

from bench.harness import say
from bench.workload import Spec
from service import tokens
from service.clock import now_ms
from service.keys import OWNER_FIELD, PRUNE_CURSOR_FIELD, rid_field
from service.records import CREATED, DIGEST, EXPIRES, HEADER_BYTES, SEP, json_text
from service.redis_ops import _source
from service.scope import EVERYTHING
from service.service import Actor, TokenService
from service.store import TokenStore
from service.tokens import TokenId
from service.user_tokens import PRUNE_BUDGET

SCRIPTS = ("index_app", "issue")
# A record: expiry ms (11 hex), created us (13 hex), digest (16 B), flags (1), pieces.


class BulkIssuer:
    def __init__(self, service: TokenService, store: TokenStore, ttl: int) -> None:
        """``store``: the TokenStore behind ``service`` (the Store protocol hides its keys)."""
        if service.store is not store:
            raise ValueError("store must be the service's own store")
        self.service = service
        self.store = store
        self.keys = store.keys
        self.ttl_ms = ttl * 1000
        self._client: Redis | None = None
        self._sha: dict[str, str] = {}
        self._tags: dict[str, str] = {}

    async def open(self) -> None:
        client = await self.store.client()
        if not isinstance(client, Redis):
            raise RuntimeError("bulk writes need a standalone Redis (pipelines across slots)")
        self._client = client
        for name in SCRIPTS:
            self._sha[name] = await cast(Any, client).script_load(_source(name))

    async def _tag(self, user_id: str) -> str:
        tag = self._tags.get(user_id)
        if tag is None:
            if len(self._tags) > 100_000:
                self._tags.clear()
            tag = self._tags[user_id] = await self.store.user_tag(user_id)
        return tag

    async def _queue(self, pipe: Any, spec: Spec) -> tuple[TokenId, str]:
        """Queue one token's two scripts, as TokenService.issue runs them; returns its value."""
        draft = self.service.draft(
            user_id=spec.user_id,
            app_id=spec.app_id,
            type=spec.type,
            scopes=list(spec.scopes),
            client_name=spec.client_name,
            device_name=spec.device_name,
        )
        tid = tokens.new_id(await self._tag(draft.user_id))  # TokenStore.new_id
        value = tokens.mint(tid)
        digest = tokens.digest(value)
        # TokenStore.issue: AppIndex.add_user (index_app.lua), then issue.lua.
        now = now_ms()
        bucket = self.keys.app_bucket_of(draft.app_id, tid.tag)
        pipe.evalsha(self._sha["index_app"], 1, bucket, tid.tag, now + self.ttl_ms + 1000, now)
        user, app = json_text(draft.user_id), json_text(draft.app_id)
        max_tokens = self.service.settings.max_tokens_per_user
        args = [rid_field(tid), self.ttl_ms, max_tokens, user, app, digest, draft.tail_pieces()]
        pipe.evalsha(self._sha["issue"], 1, self.keys.user(tid.tag), *args, PRUNE_BUDGET)
        return tid, value

    async def issue(
        self,
        specs: Iterable[Spec],
        *,
        batch: int = 500,
        parallel: int = 2,
        keep: Callable[[int], bool] = lambda i: False,
        progress_every: int = 0,
    ) -> list[tuple[Spec, TokenId, str]]:
        """Issue every spec; returns (spec, id, token value) of those whose index ``keep``s."""
        assert self._client is not None, "open() first"
        kept: list[tuple[Spec, TokenId, str]] = []
        in_flight: set[asyncio.Task[None]] = set()
        numbered = enumerate(specs)
        done_count, started = 0, time.monotonic()
        try:
            while chunk := list(itertools.islice(numbered, batch)):
                pipe = self._client.pipeline(transaction=False)
                for i, spec in chunk:
                    tid, value = await self._queue(pipe, spec)
                    if keep(i):
                        kept.append((spec, tid, value))
                while len(in_flight) >= parallel:
                    finished, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in finished:
                        task.result()
                in_flight.add(asyncio.create_task(_execute(pipe)))
                done_count += len(chunk)
                if progress_every and done_count % progress_every < batch:
                    rate = done_count / (time.monotonic() - started)
                    say(f"   ... {done_count:,} tokens queued ({rate:,.0f}/s)")
            for pending in asyncio.as_completed(in_flight):
                await pending
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        return kept


async def _execute(pipe: Any) -> None:
    replies: list[Any] = await pipe.execute()
    # issue.lua answers false (None here) when the drawn id is taken: 1 in 2**64 per user.
    if any(reply is None for reply in replies[1::2]):
        raise RuntimeError("a bulk-drawn token id clashed; run again")


async def _shape(
    client: Any, store: TokenStore, tid: TokenId, app_id: str, value: str
) -> dict[str, Any]:
    """What Redis holds for one token, with every id- and time-dependent part left out."""
    keys = store.keys
    user_key = keys.user(tid.tag)
    app_key = keys.app_bucket_of(app_id, tid.tag)
    fields: dict[bytes, bytes] = await client.hgetall(user_key)
    field = rid_field(tid)
    record = fields.get(field, b"")
    owner = fields.get(OWNER_FIELD.encode(), b"")
    others = sorted(k for k in fields if k not in (field, OWNER_FIELD.encode()))
    expires, created = int.from_bytes(record[EXPIRES]), int.from_bytes(record[CREATED])
    lifetime_ms = expires - created // 1000 if record else 0
    shape: dict[str, Any] = {
        "user.fields": [k.decode() if k == PRUNE_CURSOR_FIELD.encode() else len(k) for k in others],
        "user.owner_bytes": len(owner),
        "record.bytes": len(record),
        "record.lifetime_ms": lifetime_ms,
        "record.digest_matches": record[DIGEST] == tokens.digest(value),
        # flags and pieces: equal byte for byte (the same spec; the user piece is the owner's)
        "record.tail": record[HEADER_BYTES - 1 :],
        "record.pieces": len(record[HEADER_BYTES:].split(SEP)),
        "app.has_tag": await client.zscore(app_key, tid.tag) is not None,
    }
    for name, key in (("user", user_key), ("app", app_key)):
        shape[f"{name}.type"] = (await client.type(key)).decode()
        shape[f"{name}.encoding"] = (await client.object("encoding", key)).decode()
        shape[f"{name}.ttl"] = await client.pttl(key) > 0
    return shape


async def check_same_layout(issuer: BulkIssuer, spec: Spec, other_user: str) -> None:
    """Stop unless the bulk writer stores a token exactly as TokenService.issue does."""
    service, store = issuer.service, issuer.store
    client = await store.client()
    draft = service.draft(
        user_id=spec.user_id,
        app_id=spec.app_id,
        type=spec.type,
        scopes=list(spec.scopes),
        client_name=spec.client_name,
        device_name=spec.device_name,
    )
    issued = await service.issue(draft, ttl=issuer.ttl_ms // 1000, scope=EVERYTHING)
    via_service = tokens.parse_id(issued.record.id)
    bulk_spec = Spec(
        other_user, spec.app_id, spec.type, spec.scopes, spec.client_name, spec.device_name
    )
    [(_, via_bulk, value)] = await issuer.issue([bulk_spec], keep=lambda i: True)
    assert via_service is not None and issued.token is not None
    expected = await _shape(client, store, via_service, spec.app_id, issued.token)
    got = await _shape(client, store, via_bulk, spec.app_id, value)
    # The user ids differ only in their value; equal lengths give equal field sizes.
    if expected != got or len(spec.user_id) != len(other_user):
        raise RuntimeError(f"bulk layout differs from the service's:\n{expected}\n{got}")
    if not expected["record.digest_matches"] or expected["record.lifetime_ms"] != issuer.ttl_ms:
        raise RuntimeError(f"unexpected record from the service: {expected}")
    record = await service.introspect(value, scope=EVERYTHING)
    if record is None or record.user_id != other_user:
        raise RuntimeError("a bulk-written token does not introspect active")
    await service.revoke_id(issued.record.id, Actor(), scope=EVERYTHING)
    await service.revoke_id(str(via_bulk), Actor(), scope=EVERYTHING)
