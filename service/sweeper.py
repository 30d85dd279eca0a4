"""AppSweeper: reclaims the memory of app-wide revocations, in the background.

An app revocation takes effect at once through its watermark; the sweep only deletes the
revoked tokens early instead of waiting for their TTLs (how: app_index.py). Pending sweeps
live in Redis, so any process resumes them after a restart; running one twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.app_index import AppIndex
from service.errors import Unavailable

log = logging.getLogger(__name__)


class AppSweeper:
    def __init__(self, apps: AppIndex, interval: float = 30.0) -> None:
        self.apps = apps
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = False

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        # A flag as well as cancel(): a Redis client may swallow the cancellation of a command.
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                for app_id, watermark in (await self.apps.pending_sweeps()).items():
                    await self.sweep(app_id, watermark)
            except Unavailable:
                log.warning("app sweep postponed: redis unavailable")
            except Exception:
                log.exception("app sweep failed; retrying later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()

    async def sweep(self, app_id: str, watermark: int) -> int:
        removed = await self.apps.sweep(app_id, watermark, lambda: self._stopping)
        if not self._stopping:
            log.info("app sweep done", extra={"app_id": app_id, "removed": removed})
        return removed
