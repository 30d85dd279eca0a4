"""Recording uses of tokens with an idle lifetime, off the request path.

An introspection of such a token notes its use here; the uses are written in batches, every
``FLUSH_INTERVAL`` seconds, one script call per user (lua/touch.lua). A token's use is written
at most once per resolution: ``min(TOKENSTORE_IDLE_RESOLUTION, idle_ttl / 10)``, so the read
path stays a read path. The contract (README, Idle lifetimes): a token may go idle up to one
resolution plus one flush interval before ``idle_ttl`` seconds have passed since its last use,
never later.
"""

from __future__ import annotations

import asyncio
import logging

from service.errors import Unavailable
from service.records import TokenRecord
from service.storage import Store
from service.tokens import TokenId

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.2  # seconds


class UseRecorder:
    def __init__(self, store: Store, resolution_s: int) -> None:
        self._store = store
        self._resolution_ms = resolution_s * 1000
        self._pending: dict[TokenId, int] = {}
        self._flushed: dict[TokenId, int] = {}  # the last flush's, not to write them twice
        self._task: asyncio.Task[None] | None = None

    def resolution_ms(self, record: TokenRecord) -> int:
        return min(self._resolution_ms, record.idle_ttl * 100)

    def note(self, tid: TokenId, record: TokenRecord, now: int) -> None:
        """``record`` (of ``tid``, with an idle lifetime) was used at ``now`` (epoch ms)."""
        since = now - self.resolution_ms(record)
        if record.last_used_at > since or self._flushed.get(tid, 0) > since:
            return
        self._pending[tid] = now
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL)
        self._task = None
        await self.flush()

    async def flush(self) -> None:
        uses, self._pending = self._pending, {}
        if not uses:
            return
        try:
            await self._store.record_uses(uses)
        except Unavailable:
            # Lost uses make tokens go idle sooner, never later: the safe direction.
            log.warning("could not record %d token uses: Redis unavailable", len(uses))
        self._flushed = uses

    async def close(self) -> None:
        """Write what is pending (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()
