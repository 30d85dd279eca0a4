"""The delivery worker of one webhook in one process: it follows the ``events`` stream through
the webhook's consumer group, one event at a time, in stream order.

- The group ``webhook:<id>`` is created at the stream's end (``$``) the first time any process
  starts with the webhook: events older than the webhook are not sent. Later starts find it
  and resume where the group is, so nothing is lost across restarts.
- Each process reads as its own consumer (host, pid and a random part): with N replicas each
  event goes to one of them. XACK follows a 2xx only.
- A failed attempt is retried by the same process after an exponential backoff with jitter,
  until ``webhook_retry_for`` after the event was written; then the event is dead-lettered and
  acknowledged. Before each retry the worker claims the event again (XCLAIM), which keeps it
  from looking abandoned, and finds out if another replica took it meanwhile.
- Events left pending by a replica that died (unacknowledged for ``webhook_claim_idle``) are
  taken over with XAUTOCLAIM and delivered: at least once, so a receiver may see an event twice
  (same ``webhook-id``) when a replica died after the POST and before its XACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time

from service.clock import now_ms
from service.errors import Unavailable
from service.events import RevocationEvent
from service.metrics import Metrics
from service.settings import Settings
from service.store import TokenStore
from service.webhooks import payloads
from service.webhooks.config import Webhook
from service.webhooks.dead_letters import DeadLetter, DeadLetters
from service.webhooks.delivery import Poster

log = logging.getLogger(__name__)
READ_BLOCK_MS = 1000  # longest XREADGROUP wait (below the Redis socket timeout)
BACKLOG_EVERY_S = 1.0  # how often the lag gauge is refreshed
FAULT_PAUSE_S = 1.0  # after Redis failed, before trying again


def consumer_name() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{random.randbytes(3).hex()}"


def group_name(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"


def stream_ms(event_id: str) -> int:
    return int(event_id.partition("-")[0])


class WebhookWorker:
    def __init__(
        self,
        hook: Webhook,
        store: TokenStore,
        settings: Settings,
        metrics: Metrics,
        consumer: str,
        poster: Poster,
    ) -> None:
        self.hook = hook
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._consumer = consumer
        self._poster = poster
        self._group = group_name(hook.id)
        self._dead = DeadLetters(store, settings.max_ttl * 1000)
        self._stopping = asyncio.Event()
        self._grouped = False
        self._next_claim = 0.0
        self._claim_from = "0-0"  # XAUTOCLAIM's cursor over the group's pending entries
        self._next_backlog = 0.0
        self._block_ms = min(READ_BLOCK_MS, int(settings.redis_timeout * 500))

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._grouped:
                    await self.create_group()
                entry = await self._next()
                if entry is not None:
                    await self._handle(*entry)
                await self._refresh_backlog()
            except Unavailable as exc:
                if "NOGROUP" in str(exc.__cause__):  # the stream or group was deleted
                    self._grouped = False
                log.warning("webhook delivery paused: redis unavailable", extra=self._extra())
                await self._pause(FAULT_PAUSE_S)
            except Exception:
                log.exception("webhook delivery failed; retrying", extra=self._extra())
                await self._pause(FAULT_PAUSE_S)

    def _extra(self) -> dict[str, str]:
        return {"webhook": self.hook.id}

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def create_group(self) -> None:
        ops = await self._store.ops()
        with self._store.calls("webhook_group"):
            if await ops.xgroup_create(self._store.keys.events, self._group, "$"):
                log.info("webhook consumer group created", extra=self._extra())
        self._grouped = True

    async def _next(self) -> tuple[str, dict[str, str]] | None:
        """An event left by a dead replica, when it is time to look for one; else a new one."""
        ops = await self._store.ops()
        key = self._store.keys.events
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self._settings.webhook_claim_idle / 4
            idle_ms = int(self._settings.webhook_claim_idle * 1000)
            with self._store.calls("webhook_claim"):
                self._claim_from, claimed = await ops.xautoclaim(
                    key, self._group, self._consumer, idle_ms, 1, self._claim_from
                )
            if claimed or self._claim_from != "0-0":
                self._next_claim = 0.0  # there may be more
            if claimed:
                return _decoded(claimed[0])
        with self._store.calls("webhook_read"):
            read = await ops.xreadgroup(
                key, self._group, self._consumer, count=1, block_ms=self._block_ms
            )
        return _decoded(read[0]) if read else None

    async def _handle(self, event_id: str, fields: dict[str, str]) -> None:
        event = RevocationEvent.from_fields(fields)
        if event is None or not self.hook.wants(event):
            await self._ack(event_id)
            return
        deadline_ms = stream_ms(event_id) + self._settings.webhook_retry_for * 1000
        payload = payloads.body(self.hook, event_id, event, self._settings.max_ttl)
        attempts = 0
        while not self._stopping.is_set():
            if attempts and not await self._still_ours(event_id):
                return  # another replica took it over (this one looked dead): it delivers
            message = payloads.sign(self.hook, event_id, payload, payloads.now())
            error = await self._poster.post(self.hook.url, message)
            attempts += 1
            if error is None:
                self._metrics.webhook_delivery(self.hook.id, "delivered")
                await self._ack(event_id)
                return
            if now_ms() >= deadline_ms:
                await self._dead_letter(event_id, event, attempts, error)
                return
            self._metrics.webhook_delivery(self.hook.id, "retried")
            log.info("webhook attempt failed", extra={**self._extra(), "error": error})
            await self._pause(min(self._backoff(attempts), (deadline_ms - now_ms()) / 1000))
        # Stopping: the event stays pending; a replica (or this one, restarted) delivers it.

    def _backoff(self, attempts: int) -> float:
        """Exponential, with full jitter on its upper half, capped so that the event is
        claimed again well before it looks abandoned."""
        cap = self._settings.webhook_claim_idle / 4
        ceiling: float = min(cap, self._settings.webhook_backoff * 2.0 ** min(attempts - 1, 40))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _still_ours(self, event_id: str) -> bool:
        ops = await self._store.ops()
        with self._store.calls("webhook_claim"):
            return await ops.xclaim_touch(
                self._store.keys.events, self._group, self._consumer, event_id
            )

    async def _ack(self, event_id: str) -> None:
        ops = await self._store.ops()
        with self._store.calls("webhook_ack"):
            await ops.xack(self._store.keys.events, self._group, event_id)

    async def _dead_letter(
        self, event_id: str, event: RevocationEvent, attempts: int, error: str
    ) -> None:
        letter = DeadLetter(event_id, event, attempts, error, now_ms())
        await self._dead.add(self.hook.id, letter)
        await self._ack(event_id)
        self._metrics.webhook_delivery(self.hook.id, "dead_lettered")
        log.warning(
            "webhook event dead-lettered", extra={**self._extra(), "error": error,
                                                  "event_id": event_id, "attempts": attempts},
        )  # fmt: skip

    async def _refresh_backlog(self) -> None:
        if time.monotonic() < self._next_backlog:
            return
        self._next_backlog = time.monotonic() + BACKLOG_EVERY_S
        ops = await self._store.ops()
        with self._store.calls("webhook_backlog"):
            info = await ops.xinfo_group(self._store.keys.events, self._group)
        if info is not None:
            # ``lag``: entries the group has not read yet (None when Redis cannot tell).
            unread = int(info.get("lag") or 0)
            self._metrics.webhook_backlog(self.hook.id, unread + int(info["pending"]))


def _decoded(entry: tuple[bytes, dict[bytes, bytes]]) -> tuple[str, dict[str, str]]:
    entry_id, fields = entry
    return entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()}
