"""A webhook's dead letters: events whose delivery failed for the whole retry window. Kept in
a Redis hash per webhook (stream id -> JSON) beside a zset of their ids in stream order, listed
a page at a time, oldest first, by ``GET /v1/webhooks/{id}/failures``, redelivered (and then
dropped) by ``POST .../failures/{event_id}/redeliver``. Both keys expire after the longest
token lifetime without a new failure, as the events stream is trimmed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.events import RevocationEvent
from service.keys import dead_letter_id, dead_letter_member
from service.store import TokenStore

PAGE_DEFAULT, PAGE_MAX = 100, 1000  # dead letters of one listing (``limit``)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str  # the events stream's id: also the message's ``webhook-id``
    event: RevocationEvent
    attempts: int
    last_error: str
    failed_at: int  # epoch ms

    def public(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event": self.event.public(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "failed_at": self.failed_at,
        }


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    letters: list[DeadLetter]
    next_cursor: str | None  # the last listed event id, while more follow


class DeadLetters:
    def __init__(self, store: TokenStore, retention_ms: int) -> None:
        self._store = store
        self._retention_ms = retention_ms

    async def add(self, webhook_id: str, letter: DeadLetter) -> None:
        value = orjson.dumps(
            {
                "fields": letter.event.stream_fields(),
                "attempts": letter.attempts,
                "last_error": letter.last_error,
                "failed_at": letter.failed_at,
            }
        )
        script = (await self._store.scripts()).add_dead_letter
        member = dead_letter_member(letter.event_id)
        args = [letter.event_id, member, value, self._retention_ms]
        keys = list(self._store.keys.webhook_failures(webhook_id))
        await self._store.run("webhook_dead_letter", script, keys, args)

    async def page(self, webhook_id: str, limit: int, after: str | None) -> DeadLetterPage:
        """Up to ``limit`` dead letters, oldest first, after event id ``after`` (a cursor)."""
        ops = await self._store.ops()
        letters_key, order_key = self._store.keys.webhook_failures(webhook_id)
        start = None if after is None else dead_letter_member(after)
        with self._store.calls("webhook_failures"):
            members = await ops.zrange_after(order_key, start, limit + 1)
            ids = [dead_letter_id(member.decode()) for member in members[:limit]]
            raw = await ops.hmget(letters_key, ids)
        found = (_letter(i, value) for i, value in zip(ids, raw, strict=True) if value)
        letters = [letter for letter in found if letter is not None]
        return DeadLetterPage(letters, ids[-1] if len(members) > limit else None)

    async def get(self, webhook_id: str, event_id: str) -> DeadLetter | None:
        ops = await self._store.ops()
        letters_key, _order = self._store.keys.webhook_failures(webhook_id)
        with self._store.calls("webhook_failure"):
            raw = await ops.hget(letters_key, event_id)
        return None if raw is None else _letter(event_id, raw)

    async def drop(self, webhook_id: str, event_id: str) -> None:
        script = (await self._store.scripts()).drop_dead_letter
        keys = list(self._store.keys.webhook_failures(webhook_id))
        args = [event_id, dead_letter_member(event_id)]
        await self._store.run("webhook_failure_drop", script, keys, args)


def _letter(event_id: str, raw: bytes) -> DeadLetter | None:
    try:
        stored = orjson.loads(raw)
        event = RevocationEvent.from_fields(stored["fields"])
        if event is None:
            return None
        return DeadLetter(
            event_id, event, int(stored["attempts"]), str(stored["last_error"]),
            int(stored["failed_at"]),
        )  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # damaged: left out rather than fail the listing
