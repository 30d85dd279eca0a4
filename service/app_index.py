"""An app's index: which users hold its tokens, for listing them and sweeping them away.

Each app's users are spread over ``APP_BUCKETS`` zsets (keys.py), user tag -> latest expiry of
the user's tokens of the app, so no key grows big. A listing walks the buckets in order and
each bucket's users by tag, reading each user's hash; its cursor is ``<bucket>.<token id>``.
The sweep of a revoked app pops users in chunks (never a big command), revokes their older
tokens of the app with one user-slot script each, and puts back users who keep newer ones.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service import tokens
from service.clock import now_ms
from service.errors import BadRequest
from service.keys import APP_BUCKETS
from service.records import TokenRecord

if TYPE_CHECKING:
    from service.store import TokenStore

# A listing reads this many buckets per pipeline.
BUCKETS_PER_ROUND = 128
# A cursor as written: "<bucket>.<token id>", the bucket in plain decimal, 0 to 1023. The
# OpenAPI document states the same pattern, so schema and parser cannot disagree.
CURSOR_PATTERN = rf"(?:0|[1-9][0-9]{{0,2}}|10[01][0-9]|102[0-3])\.{tokens.ID_PATTERN}"
_CURSOR_RE = re.compile(CURSOR_PATTERN)
assert APP_BUCKETS == 1024, "CURSOR_PATTERN spells the bucket numbers out"
# ZPOPMIN of 1000 from a big (skiplist) bucket blocked Redis ~0.55 ms; 250 keeps it ~4x shorter.
SWEEP_CHUNK = 250
PARALLEL_SCRIPTS = 32


@dataclass(frozen=True, slots=True)
class AppCursor:
    """Where an app listing resumes: after token ``last_id`` of bucket ``bucket``."""

    bucket: int = 0
    last_id: str = ""

    @classmethod
    def parse(cls, cursor: str | None) -> AppCursor:
        if not cursor:
            return cls()
        # ASCII digits, few of them (int() refuses "²" and numbers of over 4,300 digits).
        if _CURSOR_RE.fullmatch(cursor) is None:
            raise BadRequest("not a cursor of this listing", code="invalid_cursor")
        number, _, last_id = cursor.partition(".")
        return cls(int(number), last_id)

    def admits(self, bucket: int, tag: str, token_id: str | None = None) -> bool:
        """True if (bucket, tag, token_id) comes after this cursor (None: any id of the tag)."""
        if bucket != self.bucket or not self.last_id:
            return bucket >= self.bucket
        last = tokens.parse_id(self.last_id)
        assert last is not None  # checked by parse()
        if token_id is None:
            return tag >= last.tag
        return (tag, token_id) > (last.tag, self.last_id)


class AppIndex:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._keys = store.keys

    async def add_user(self, app_id: str, tag: str, expires_at: int) -> None:
        """Record that user ``tag`` holds a token of the app until at least ``expires_at``."""
        store = self._store
        key = self._keys.app_bucket_of(app_id, tag)
        script = (await store.scripts()).index_app
        await store.run("index_app", script, [key], [tag, expires_at, now_ms()])

    async def tokens(
        self, app_id: str, after: str | None
    ) -> AsyncIterator[tuple[TokenRecord, str]]:
        start = AppCursor.parse(after)
        for first in range(start.bucket, APP_BUCKETS, BUCKETS_PER_ROUND):
            for bucket, tags in await self._users(app_id, first):
                for tag in tags:
                    if not start.admits(bucket, tag):
                        continue
                    records = await self._store.users.list_tag(tag)
                    for record in sorted(records, key=lambda r: r.id):
                        if record.app_id == app_id and start.admits(bucket, tag, record.id):
                            yield record, f"{bucket}.{record.id}"

    async def _users(self, app_id: str, first: int) -> list[tuple[int, list[str]]]:
        """The user tags of buckets ``first..`` (one round), each bucket's tags sorted."""
        store = self._store
        buckets = range(first, min(first + BUCKETS_PER_ROUND, APP_BUCKETS))
        ops = await store.ops()
        with store.calls("app_users"):
            keys = [self._keys.app_bucket(app_id, bucket) for bucket in buckets]
            rounds = await ops.zrangebyscore_many(keys, now_ms())
        return [
            (bucket, sorted(tag.decode() for tag in tags))
            for bucket, tags in zip(buckets, rounds, strict=True)
        ]

    # --- sweeping ---------------------------------------------------------------------------

    async def pending_sweeps(self) -> dict[str, int]:
        """App id -> watermark (us) of each app revocation whose sweep has not finished."""
        store = self._store
        ops = await store.ops()
        with store.calls("pending_sweeps"):
            raw = await ops.hgetall(self._keys.sweeps)
        return {app.decode(): int(us) for app, us in raw.items()}

    async def sweep(self, app_id: str, watermark: int, stopping: Callable[[], bool]) -> int:
        """Delete the app's tokens created before ``watermark``; returns how many. Stops early
        (the sweep stays pending) once ``stopping()``; running it twice is harmless."""
        store = self._store
        removed = 0
        limit = asyncio.Semaphore(PARALLEL_SCRIPTS)

        async def sweep_user(tag: str) -> tuple[str, int, int]:
            async with limit:
                revoked, kept = await store.users.revoke_tag(tag, b"", (app_id,), b"", watermark)
            return tag, len(revoked), kept

        for bucket in range(APP_BUCKETS):
            if stopping():
                return removed
            survivors: list[tuple[str, int]] = []
            while tags := await self._pop(app_id, bucket):
                for tag, count, kept in await asyncio.gather(*map(sweep_user, tags)):
                    removed += count
                    if kept:
                        survivors.append((tag, kept))
            for tag, kept in survivors:
                await self.add_user(app_id, tag, kept)
        await self.finish_sweep(app_id, watermark)
        return removed

    async def _pop(self, app_id: str, bucket: int) -> list[str]:
        store = self._store
        ops = await store.ops()
        with store.calls("pop_app_users"):
            popped = await ops.zpopmin(self._keys.app_bucket(app_id, bucket), SWEEP_CHUNK)
        return [tag.decode() for tag in popped]

    async def finish_sweep(self, app_id: str, watermark: int) -> bool:
        """Mark the sweep to ``watermark`` done, in one compare-and-delete: a newer revocation
        of the app meanwhile keeps its own entry. True if the entry was removed."""
        store = self._store
        script = (await store.scripts()).finish_sweep
        removed = await store.run("finish_sweep", script, [self._keys.sweeps], [app_id, watermark])
        return bool(removed)
