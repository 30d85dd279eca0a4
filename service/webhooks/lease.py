"""A webhook's delivery lease: which one process delivers the webhook's events.

The lease is a Redis string holding its holder's random token, set with a time to live
(``TOKENSTORE_WEBHOOK_LEASE``). Every process with the webhook runs ``keep``: a process holding
the lease extends it every quarter of the TTL (``claim_lease.lua``, a compare-and-extend); a
standby tries to take it as often, which it can once the holder released it (stopping) or
let it expire (dead, stalled, or cut off from Redis).

The holder counts its lease as held for ``SAFE_FRACTION`` of the TTL from the moment it
*sent* the claim: Redis started the TTL later than that, so the holder stops delivering before
any other process can take the lease over. A renewal that fails (Redis unreachable) does not
stop delivery at once, only when that time runs out; a renewal answered "another process holds
it" (Redis lost the key and a standby took it) stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from service.errors import Unavailable
from service.metrics import Metrics
from service.store import TokenStore

log = logging.getLogger(__name__)
SAFE_FRACTION = 0.9  # of the TTL, from the claim's sending: a margin for clock rates and GC
CLAIMS_PER_TTL = 4  # a holder renews, and a standby tries, this often per TTL


class Lease:
    def __init__(self, store: TokenStore, webhook_id: str, ttl_s: float, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._webhook_id = webhook_id
        self._key = store.keys.webhook_lease(webhook_id)
        self._token = secrets.token_hex(16)
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._valid_until = 0.0  # time.monotonic() up to which this process holds it
        self._extra = {"webhook": webhook_id}
        self._failing = False  # Redis failed the last claim (logged once)
        self.term = 0  # times taken: a new term starts with the pending entries
        self.taken = asyncio.Event()  # set when a term starts (wakes a standby's worker)

    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    def remaining(self) -> float:
        """Seconds this process still holds the lease for, unless extended (0: not held)."""
        return max(0.0, self._valid_until - time.monotonic())

    async def keep(self, stopping: asyncio.Event) -> None:
        """Take the lease when it is free, and extend it while held, until ``stopping``."""
        interval = self._ttl_ms / 1000 / CLAIMS_PER_TTL
        while not stopping.is_set():
            try:
                await self.claim()
            except Exception:  # a bug in one claim must not end the keeping
                log.exception("webhook lease claim failed", extra=self._extra)
            self._metrics.webhook_lease(self._webhook_id, held=self.held())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stopping.wait()

    async def claim(self) -> bool:
        """One attempt to take or extend the lease: whether this process holds it now."""
        sent, was_held = time.monotonic(), self.held()
        try:
            script = (await self._store.scripts()).claim_lease
            ours = bool(
                await self._store.run(
                    "webhook_lease", script, [self._key], [self._token, self._ttl_ms]
                )
            )
        except Unavailable:
            if not self._failing:
                log.warning("webhook lease not renewed: redis unavailable", extra=self._extra)
            self._failing = True
            return self.held()
        self._failing = False
        if ours:
            self._valid_until = sent + self._ttl_ms / 1000 * SAFE_FRACTION
            if not was_held:
                self.term += 1
                self.taken.set()
                log.info("webhook delivery lease taken", extra=self._extra)
        elif was_held:
            self._valid_until = 0.0
            log.warning("webhook delivery lease lost to another process", extra=self._extra)
        return ours

    async def release(self) -> None:
        """Give the lease up (stopping), so that a standby takes over at once."""
        if not self.held():
            return
        self._valid_until = 0.0
        self._metrics.webhook_lease(self._webhook_id, held=False)
        script = (await self._store.scripts()).release_lease
        with contextlib.suppress(Unavailable):
            await self._store.run("webhook_lease_release", script, [self._key], [self._token])
