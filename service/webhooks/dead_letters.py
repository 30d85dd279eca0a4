"""A webhook's dead letters: events whose delivery failed for the whole retry window. Kept in
a Redis hash per webhook (stream id -> JSON), listed by ``GET /v1/webhooks/{id}/failures``,
redelivered (and then dropped) by ``POST .../failures/{event_id}/redeliver``. The hash expires
after the longest token lifetime without a new failure, as the events stream is trimmed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.events import RevocationEvent
from service.store import TokenStore

LISTED = 100  # failures answered by one listing, oldest first


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


def _stream_order(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


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
        ops = await self._store.ops()
        key = self._store.keys.webhook_failures(webhook_id)
        with self._store.calls("webhook_dead_letter"):
            await ops.hset_expiring(key, letter.event_id, value, self._retention_ms)

    async def list(self, webhook_id: str) -> list[DeadLetter]:
        ops = await self._store.ops()
        key = self._store.keys.webhook_failures(webhook_id)
        with self._store.calls("webhook_failures"):
            raw = await ops.hscan_some(key, LISTED)
        letters = [_letter(k.decode(), v) for k, v in raw.items()]
        kept = (letter for letter in letters if letter is not None)
        return sorted(kept, key=lambda letter: _stream_order(letter.event_id))[:LISTED]

    async def get(self, webhook_id: str, event_id: str) -> DeadLetter | None:
        ops = await self._store.ops()
        key = self._store.keys.webhook_failures(webhook_id)
        with self._store.calls("webhook_failure"):
            raw = await ops.hget(key, event_id)
        return None if raw is None else _letter(event_id, raw)

    async def drop(self, webhook_id: str, event_id: str) -> None:
        ops = await self._store.ops()
        with self._store.calls("webhook_failure_drop"):
            await ops.hdel(self._store.keys.webhook_failures(webhook_id), event_id)


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
