"""The revocation events in Redis: the ``events`` stream every process and gateway follows,
and each user's short list of recent revocations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from redis.exceptions import ResponseError

from service.clock import now_ms
from service.events import RevocationEvent

if TYPE_CHECKING:
    from service.store import TokenStore

# A user's own event list keeps this many recent revocations (the global stream keeps all).
USER_EVENTS_KEPT = 100


@dataclass(frozen=True, slots=True)
class StreamState:
    """What XINFO STREAM tells of the events stream; ids are ``"<ms>-<seq>"`` strings."""

    last_id: str  # the last id ever added ("0-0": none)
    first_id: str  # the oldest entry still held ("0-0": none)
    length: int
    entries_added: int  # ever; more than ``length`` once entries were trimmed


# An event of the stream: its id and its fields.
StreamEntry = tuple[str, dict[str, str]]


def _entries(raw: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> list[StreamEntry]:
    return [
        (entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for entry_id, fields in raw
    ]


class EventLog:
    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self._keys = store.keys

    async def append(self, event: RevocationEvent, retention_ms: int, user_tag: str | None) -> str:
        """Append to the events stream and, for a user's revocation, to that user's list."""
        fields = event.stream_fields()
        store = self._store
        ops = await store.ops()
        with store.calls("append_event"):
            event_id = await ops.xadd(self._keys.events, fields, now_ms() - retention_ms)
        if user_tag is not None:
            args = [orjson.dumps(fields), USER_EVENTS_KEPT, retention_ms]
            script = (await store.scripts()).log_user_event
            await store.run("log_user_event", script, [self._keys.user_events(user_tag)], args)
        return event_id.decode()

    async def of_user(self, tag: str) -> list[RevocationEvent]:
        """The user's recent revocation events, newest first."""
        store = self._store
        ops = await store.ops()
        with store.calls("user_events"):
            raw = await ops.lrange(self._keys.user_events(tag))
        events = (RevocationEvent.from_fields(orjson.loads(entry)) for entry in raw)
        return [event for event in events if event is not None]

    async def stream(self) -> StreamState | None:
        """The state of the events stream, or None if it does not exist (yet)."""
        store = self._store
        ops = await store.ops()
        with store.calls("event_stream"):
            try:
                info = await ops.xinfo_stream(self._keys.events)
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None
                raise
        return StreamState(
            last_id=info["last-generated-id"].decode(),
            first_id=info["recorded-first-entry-id"].decode(),
            length=int(info["length"]),
            entries_added=int(info["entries-added"]),
        )

    async def read(self, after: str, block_ms: int, count: int) -> list[StreamEntry]:
        """Events after id ``after``, waiting up to ``block_ms`` for one (XREAD BLOCK)."""
        store = self._store
        ops = await store.ops()
        with store.calls("read_events"):
            return _entries(
                await ops.xread(self._keys.events, after, count=count, block_ms=block_ms)
            )

    async def range(self, after: str, last: str, count: int) -> list[StreamEntry]:
        """At most ``count`` events with ids in (``after``, ``last``], oldest first."""
        store = self._store
        ops = await store.ops()
        with store.calls("event_range"):
            return _entries(await ops.xrange(self._keys.events, f"({after}", last, count))
