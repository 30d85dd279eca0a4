"""Writing many tokens fast, exactly as the service writes them.

``BulkIssuer`` replays ``TokenService.issue`` for a minted token: the same validation
(``TokenService.draft``), the same key names (``TokenStore.keys``), the same record fields
(``TokenDraft.fields``), the same token format and digest (``service.tokens``) and the same two
Lua scripts (``service/lua/index_app.lua`` then ``issue.lua``, loaded from the package), in
the same order. Only the round trips differ: many tokens share one pipeline (standalone
Redis only). ``check_same_layout`` compares what it writes with what ``TokenService.issue``
writes, key by key, so a change in the service that the replay misses stops the benchmark.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from importlib.resources import files
from typing import Any, cast

from redis.asyncio import Redis

from bench.harness import say
from bench.workload import Spec
from service import tokens
from service.scope import EVERYTHING
from service.service import Actor, TokenService
from service.store import now_ms
from service.tokens import TokenId

SCRIPTS = ("index_app", "issue")


class BulkIssuer:
    def __init__(
        self, service: TokenService, ttl: int, script_edits: Sequence[tuple[str, str]] = ()
    ) -> None:
        """``script_edits``: (old, new) text replacements in the scripts, to prototype layouts."""
        self.service = service
        self._edits = list(script_edits)
        self.keys = service.store.keys
        self.ttl_ms = ttl * 1000
        self._client: Redis | None = None
        self._tag_key = b""
        self._sha: dict[str, str] = {}
        self._tags: dict[str, str] = {}

    async def open(self) -> None:
        client = await self.service.store.client()
        if not isinstance(client, Redis):
            raise RuntimeError("bulk writes need a standalone Redis (pipelines across slots)")
        self._client = client
        self._tag_key = await self.service.store.tag_key()
        for name in SCRIPTS:
            source = (files("service") / "lua" / f"{name}.lua").read_text()
            for old, new in self._edits:
                if name == "issue" and old not in source:
                    raise RuntimeError(f"issue.lua has no {old!r} to edit")
                source = source.replace(old, new)
            self._sha[name] = await cast(Any, client).script_load(source)

    def _tag(self, user_id: str) -> str:
        tag = self._tags.get(user_id)
        if tag is None:
            if len(self._tags) > 100_000:
                self._tags.clear()
            tag = self._tags[user_id] = tokens.user_tag(self._tag_key, user_id)
        return tag

    def _queue(self, pipe: Any, spec: Spec) -> tuple[TokenId, str]:
        """Queue one token's two scripts, as TokenService.issue runs them; returns its value."""
        draft = self.service.draft(
            user_id=spec.user_id,
            app_id=spec.app_id,
            type=spec.type,
            scopes=list(spec.scopes),
            client_name=spec.client_name,
            device_name=spec.device_name,
        )
        tag = self._tag(draft.user_id)
        now = now_ms()
        bucket = self.keys.app_bucket_of(draft.app_id, tag)
        pipe.evalsha(self._sha["index_app"], 1, bucket, tag, now + self.ttl_ms + 1000, now)
        tid = tokens.new_id(tag)
        value = tokens.mint(tid)
        keys = [self.keys.token(tid), self.keys.user_index(tag)]
        args = [tid.rid, self.ttl_ms, self.service.settings.max_tokens_per_user]
        args += [self.keys.token_prefix(tag), *draft.redis_fields(tokens.digest(value))]
        pipe.evalsha(self._sha["issue"], 2, *keys, *args)
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
        in_flight: set[asyncio.Task[Any]] = set()
        numbered = enumerate(specs)
        done_count, started = 0, time.monotonic()
        try:
            while chunk := list(itertools.islice(numbered, batch)):
                pipe = self._client.pipeline(transaction=False)
                for i, spec in chunk:
                    tid, value = self._queue(pipe, spec)
                    if keep(i):
                        kept.append((spec, tid, value))
                while len(in_flight) >= parallel:
                    finished, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in finished:
                        task.result()
                in_flight.add(asyncio.create_task(pipe.execute()))
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


async def _shape(client: Any, service: TokenService, tid: TokenId, app_id: str) -> dict[str, Any]:
    """What Redis holds for one token, with every id-dependent part left out."""
    keys = service.store.keys
    token_key = keys.token(tid)
    user_key = keys.user_index(tid.tag)
    app_key = keys.app_bucket_of(app_id, tid.tag)
    raw = await client.hgetall(token_key)
    shape: dict[str, Any] = {
        "token.fields": {k.decode(): len(v) for k, v in raw.items()},
        "user.has_rid": await client.zscore(user_key, tid.rid) is not None,
        "app.has_tag": await client.zscore(app_key, tid.tag) is not None,
    }
    for name, key in (("token", token_key), ("user", user_key), ("app", app_key)):
        shape[f"{name}.type"] = (await client.type(key)).decode()
        shape[f"{name}.encoding"] = (await client.object("encoding", key)).decode()
        shape[f"{name}.ttl"] = await client.pttl(key) > 0
    return shape


async def check_same_layout(issuer: BulkIssuer, spec: Spec, other_user: str) -> None:
    """Stop unless the bulk writer stores a token exactly as TokenService.issue does."""
    service = issuer.service
    client = await service.store.client()
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
    assert via_service is not None
    expected = await _shape(client, service, via_service, spec.app_id)
    got = await _shape(client, service, via_bulk, spec.app_id)
    # The user ids differ only in their value; equal lengths give equal field sizes.
    if expected != got or len(spec.user_id) != len(other_user):
        raise RuntimeError(f"bulk layout differs from the service's:\n{expected}\n{got}")
    record = await service.introspect(value, scope=EVERYTHING)
    if record is None or record.user_id != other_user:
        raise RuntimeError("a bulk-written token does not introspect active")
    await service.revoke_id(issued.record.id, Actor(), scope=EVERYTHING)
    await service.revoke_id(str(via_bulk), Actor(), scope=EVERYTHING)
