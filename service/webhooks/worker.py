"""The delivery worker of one webhook in one process. Every process runs one per webhook, but
only the holder of the webhook's **lease** (lease.py) delivers; the others stand by.

Why one deliverer per webhook: the issue asks for each user's events in order, at least once,
with N replicas. The ``events`` stream already orders every event; a single consumer of the
webhook's consumer group that delivers one event at a time, and XACKs it after a 2xx (or a
dead letter) before the next, keeps that order, and so each user's. Letting every replica
read as its own consumer delivered faster but out of order across replicas; partitioning users
over replicas would keep per-user order only with a membership protocol to move partitions
when a replica dies (a lease per partition, at least) and many consumer groups per webhook,
for throughput a single receiver rarely needs (bench/webhooks.py measures one deliverer). Many
webhooks still spread over replicas: each lease goes to whichever process takes it first.

- The group ``webhook:<id>`` is created at the stream's end (``$``) the first time any process
  starts with the webhook: events older than the webhook are not sent. Later starts find it
  and resume where the group is, so nothing is lost across restarts.
- A process that takes the lease (a new *term*) first goes over the group's pending entries in
  stream order (XAUTOCLAIM with no minimum idle time, from ``0-0``), delivering each: an event
  the previous holder read but did not acknowledge (it died mid-delivery) is delivered again,
  before any later one. The lease makes the idle time unneeded: the previous holder stopped
  delivering before its lease could be taken. Then it deletes the consumers left with nothing
  pending (past holders') and reads new events (XREADGROUP ``>``).
- Fencing: the worker checks that it still holds the lease before reading, before each POST
  and before a dead letter; it stops (leaving the event pending) when the lease runs out. A
  blocking read waits no longer than the lease has left, so that Redis cannot hand it an
  event after another process took over (if it still did, after a long network delay, the
  holder finds that event pending between two of its own and delivers it then, out of order).
  An XACK is not fenced: it records a 2xx this process did get, and spares the next holder a
  duplicate. A POST already sent when the lease runs out may still arrive: a duplicate of the
  event the next holder starts with, never a later event before it.
- A failed attempt is retried after an exponential backoff with jitter, until
  ``webhook_retry_for`` after the event was written; then the event is dead-lettered and
  acknowledged. The event holds the webhook's later events back meanwhile (head of line).
- At least once: a receiver sees an event twice (same ``webhook-id``) when the holder died or
  lost its lease after the POST and before its XACK.
"""

from __future__ import annotations

import asyncio
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
from service.webhooks.lease import Lease

log = logging.getLogger(__name__)
READ_BLOCK_MS = 1000  # longest XREADGROUP wait (below the Redis socket timeout)
BACKLOG_EVERY_S = 1.0  # how often the lag gauge is refreshed (and a standby looks up)
FAULT_PAUSE_S = 1.0  # after Redis failed, before trying again
BACKOFF_CAP_S = 30.0  # longest pause between attempts (unless the first one is longer)


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
        self.lease = Lease(store, hook.id, settings.webhook_lease, metrics)
        self._stopping = asyncio.Event()
        self._grouped = False
        self._term = 0  # the lease term this worker has taken the pending entries over for
        self._pending = True  # the group's pending entries come before new ones
        self._claim_from = "0-0"  # XAUTOCLAIM's cursor over the group's pending entries
        self._next_backlog = 0.0
        self._block_ms = min(READ_BLOCK_MS, int(settings.redis_timeout * 500))

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        keeper = asyncio.create_task(self.lease.keep(self._stopping), name="webhook lease")
        try:
            await self._deliver()
        finally:
            keeper.cancel()  # before the release: a late renewal would take the lease again
            await asyncio.gather(keeper, return_exceptions=True)
        await self.lease.release()  # stopped: a standby takes over now, not a TTL later

    async def _deliver(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._step()
            except Unavailable as exc:
                if "NOGROUP" in str(exc.__cause__):  # the stream or group was deleted
                    self._grouped = False
                self._restart_pending()  # an event may be left unacknowledged
                log.warning("webhook delivery paused: redis unavailable", extra=self._extra())
                await self._pause(FAULT_PAUSE_S)
            except Exception:
                self._restart_pending()
                log.exception("webhook delivery failed; retrying", extra=self._extra())
                await self._pause(FAULT_PAUSE_S)

    async def _step(self) -> None:
        await self._refresh_backlog()
        if not self.lease.held():  # standing by, until this process takes the lease
            await self._pause(BACKLOG_EVERY_S, wake=self.lease.taken)
            self.lease.taken.clear()
            return
        if self._term != self.lease.term:  # a new term: the pending entries first
            self._term = self.lease.term
            self._restart_pending()
        if not self._grouped:
            await self.create_group()
        entry = await self._next()
        if entry is not None:
            await self._handle(*entry)

    def _restart_pending(self) -> None:
        self._pending, self._claim_from = True, "0-0"

    def _extra(self) -> dict[str, str]:
        return {"webhook": self.hook.id}

    async def _pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Until ``seconds`` have passed, the worker is stopped, or ``wake`` is set."""
        events = [self._stopping] if wake is None else [self._stopping, wake]
        waits = [asyncio.create_task(event.wait()) for event in events]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def create_group(self) -> None:
        ops = await self._store.ops()
        with self._store.calls("webhook_group"):
            if await ops.xgroup_create(self._store.keys.events, self._group, "$"):
                log.info("webhook consumer group created", extra=self._extra())
        self._grouped = True

    async def _next(self) -> tuple[str, dict[str, str]] | None:
        """The next pending entry (of any consumer) while there are some, else a new one."""
        ops = await self._store.ops()
        key = self._store.keys.events
        if self._pending:
            with self._store.calls("webhook_claim"):
                self._claim_from, claimed = await ops.xautoclaim(
                    key, self._group, self._consumer, 0, 1, self._claim_from
                )
            if self._claim_from == "0-0":  # none after this one
                self._pending = False
                await self._forget_consumers()
            return _decoded(claimed[0]) if claimed else None
        # A blocking read must not outlast the lease: Redis could hand it an event after
        # another process took the lease over and went over the pending entries.
        block_ms = min(self._block_ms, int(self.lease.remaining() * 1000))
        if block_ms < 1:  # (0 would block for ever)
            return None
        with self._store.calls("webhook_read"):
            read = await ops.xreadgroup(
                key, self._group, self._consumer, count=1, block_ms=block_ms
            )
        return _decoded(read[0]) if read else None

    async def _forget_consumers(self) -> None:
        """Once the pending entries are this process's, drop the consumers of processes gone
        (each process that held the lease made one), so that the group does not fill up."""
        ops = await self._store.ops()
        with self._store.calls("webhook_consumers"):
            deleted = await ops.xdelete_idle_consumers(
                self._store.keys.events, self._group, self._consumer
            )
        if deleted:
            log.info("webhook consumers of past holders deleted", extra=self._extra())

    async def _handle(self, event_id: str, fields: dict[str, str]) -> None:
        event = RevocationEvent.from_fields(fields)
        if event is None or not self.hook.wants(event):
            await self._ack(event_id)
            return
        deadline_ms = stream_ms(event_id) + self._settings.webhook_retry_for * 1000
        payload = payloads.body(self.hook, event_id, event, self._settings.max_ttl)
        attempts = 0
        # Stopping, or the lease lost: the event stays pending, for the next holder.
        while not self._stopping.is_set() and self.lease.held():
            message = payloads.sign(self.hook, event_id, payload, payloads.now())
            error = await self._poster.post(self.hook.url, message)
            attempts += 1
            if error is None:
                self._metrics.webhook_delivery(self.hook.id, "delivered")
                await self._ack(event_id)
                return
            if now_ms() >= deadline_ms:
                if self.lease.held():
                    await self._dead_letter(event_id, event, attempts, error)
                return
            self._metrics.webhook_delivery(self.hook.id, "retried")
            log.info("webhook attempt failed", extra={**self._extra(), "error": error})
            await self._pause(min(self._backoff(attempts), (deadline_ms - now_ms()) / 1000))

    def _backoff(self, attempts: int) -> float:
        """Exponential, with full jitter on its upper half, capped."""
        first = self._settings.webhook_backoff
        cap = max(BACKOFF_CAP_S, first)
        ceiling: float = min(cap, first * 2.0 ** min(attempts - 1, 40))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

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
        if info is None:
            return
        # ``lag``: entries the group has not read yet (None when Redis cannot tell).
        unread, pending = int(info.get("lag") or 0), int(info["pending"])
        self._metrics.webhook_backlog(self.hook.id, unread + pending)
        if pending and self.lease.held():
            # Between two events the holder has none pending of its own: these were read by
            # a past holder after this one's takeover pass (see _next). Deliver them now.
            self._restart_pending()


def _decoded(entry: tuple[bytes, dict[bytes, bytes]]) -> tuple[str, dict[str, str]]:
    entry_id, fields = entry
    return entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()}
