"""EventFeed: one reader of the revocation events stream per process, fanning out to the
subscribers of ``/v1/events``.

Why one shared reader rather than one XREAD BLOCK connection per subscriber: a hundred
gateways then cost one pooled Redis connection and one read of every event per process,
instead of a hundred blocked connections (which would drain the pool that introspection
needs) and a hundred reads of the same events.

Ordering without gaps: a subscription starts at the reader's position at the moment it is
added (``start``); every later event reaches its queue. Anything older is replayed by the
subscriber itself from the stream (XRANGE up to ``start``). The reader runs while someone
listens; if Redis fails it ends every subscription (clients reconnect with ``Last-Event-ID``
and lose nothing), so a stream never looks alive while nothing can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from service import sse
from service.errors import Unavailable
from service.event_log import StreamEntry, StreamState
from service.events import EventKind, RevocationEvent
from service.store import TokenStore

log = logging.getLogger(__name__)

READ_COUNT = 500
# A subscriber this far behind is cut off; it reconnects and replays from Redis instead.
QUEUE_LIMIT = 10_000
IDS_PER_MESSAGE = 500
EVENT_ID_PATTERN = "[0-9]{1,20}-[0-9]{1,20}"  # ASCII digits: \d alone admits any script's
_ID_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def parse_event_id(raw: str) -> tuple[int, int] | None:
    """A stream id ``"<ms>-<seq>"`` as a comparable pair, or None if malformed."""
    match = _ID_RE.fullmatch(raw)
    return None if match is None else (int(match[1]), int(match[2]))


def event_key(event_id: str) -> tuple[int, int]:
    key = parse_event_id(event_id)
    if key is None:
        raise ValueError(f"not a stream id: {event_id!r}")
    return key


def events_lost_after(state: StreamState | None, event_id: str) -> bool:
    """True if events after ``event_id`` may be gone, so its holder must resync.

    Trimming (MINID, at the longest token lifetime) removes the oldest entries only; a stream
    that never issued ``event_id`` (deleted, or Redis wiped) has lost everything since.
    """
    after = event_key(event_id)
    if state is None:
        return after != (0, 0)
    if after > event_key(state.last_id):
        return True
    if state.entries_added == state.length:
        return False  # nothing was ever removed
    oldest_kept = state.first_id if state.length else state.last_id
    return after < event_key(oldest_kept)


def events_lost_since(state: StreamState | None, since_ms: int) -> bool:
    """True if events written at or after ``since_ms`` (epoch ms) may have been trimmed."""
    if state is None or state.entries_added == state.length:
        return False  # no stream (no events), or nothing ever removed
    oldest_kept = state.first_id if state.length else state.last_id
    return event_key(oldest_kept) > (since_ms, 0)


def just_before(since_ms: int) -> str:
    """The stream id right before every event written at or after ``since_ms``."""
    return f"{since_ms - 1}-{2**64 - 1}" if since_ms > 0 else "0-0"


@dataclass(frozen=True, slots=True)
class FeedEvent:
    id: str
    kind: EventKind | None  # None: a kind this version does not know (sent to nobody)
    app_id: str
    wire: bytes  # the SSE message(s), encoded once for every subscriber

    @classmethod
    def from_entry(cls, entry: StreamEntry) -> FeedEvent:
        event_id, fields = entry
        event = RevocationEvent.from_fields(fields)
        if event is None:
            return cls(event_id, None, "", b"")
        ids = list(event.ids) if event.ids else None
        wire = _wire(event_id, event.kind, event.feed_body(), ids)
        return cls(event_id, event.kind, event.app_id, wire)


def _wire(event_id: str, kind: str, body: dict[str, object], ids: list[str] | None) -> bytes:
    """One message, or several if it names many tokens: each stays a short line for clients.

    Only the last part carries the id, so a client cut off in between gets all of it again.
    """
    if ids is None:
        return sse.message(id=event_id, event=kind, data=orjson.dumps(body).decode())
    parts = [ids[i : i + IDS_PER_MESSAGE] for i in range(0, len(ids), IDS_PER_MESSAGE)] or [[]]
    return b"".join(
        sse.message(
            id=event_id if n == len(parts) - 1 else None,
            event=kind,
            data=orjson.dumps({**body, "ids": part}).decode(),
        )
        for n, part in enumerate(parts)
    )


class Subscription:
    def __init__(self, start: str) -> None:
        self.start = start
        self._queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue()
        self.closed = False

    def deliver(self, event: FeedEvent) -> bool:
        """Queues an event; False (and closed) if the subscriber has fallen too far behind."""
        if self._queue.qsize() >= QUEUE_LIMIT:
            self.close()
            return False
        self._queue.put_nowait(event)
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def follow(self, heartbeat: float) -> AsyncIterator[FeedEvent | None]:
        """Events as they come; None after each ``heartbeat`` seconds of quiet; ends on close."""
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    event = await self._queue.get()
            except TimeoutError:
                yield None
                continue
            if event is None:
                return
            yield event


class EventFeed:
    def __init__(self, store: TokenStore, block_ms: int) -> None:
        self._store = store
        self._block_ms = block_ms
        self._subscribers: set[Subscription] = set()
        self._cursor = "0-0"
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closing = False

    async def subscribe(self) -> Subscription:
        """A new subscription; Unavailable if Redis cannot be reached or the app is stopping."""
        if self._closing:
            raise Unavailable("the service is shutting down")
        async with self._lock:
            if self._task is None or self._task.done():
                state = await self._store.event_stream()
                self._cursor = "0-0" if state is None else state.last_id
                self._task = asyncio.create_task(self._run())
        # No await from here on: the reader cannot move between reading its cursor and
        # adding the subscription, so the subscriber misses nothing after ``start``.
        subscription = Subscription(self._cursor)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        subscription.close()

    async def _run(self) -> None:
        try:
            while self._subscribers and not self._closing:
                entries = await self._store.read_events(self._cursor, self._block_ms, READ_COUNT)
                for entry in entries:
                    self._fan_out(FeedEvent.from_entry(entry))
        except Unavailable:
            log.warning("revocation feed: redis unavailable; ending %d streams", self.listeners)
        except Exception:
            log.exception("revocation feed failed; ending %d streams", self.listeners)
        finally:
            self._end_all()

    def _fan_out(self, event: FeedEvent) -> None:
        self._cursor = event.id
        for subscription in list(self._subscribers):
            if not subscription.deliver(event):
                log.warning("revocation feed: a subscriber fell %d events behind", QUEUE_LIMIT)
                self._subscribers.discard(subscription)

    def _end_all(self) -> None:
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        """Ends every stream and stops the reader (at shutdown, before Redis is closed)."""
        self._closing = True
        self._end_all()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=5)
