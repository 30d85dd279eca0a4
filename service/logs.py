"""Process-wide logging: one JSON object per line on stderr, for every logger.

Each line has ``ts`` (UTC, ms), ``level``, ``logger``, ``msg`` and ``pid``; the ``extra``
fields of the call; ``request_id`` when logged while a request is handled; ``exc`` with the
traceback of an exception. Callers pass only bounded, non-secret values: never a token.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# Set by service.api.observe for the duration of a request (and of the tasks it starts).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        line.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Requests are logged by service.api.observe; aiohttp's own access log stays off.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
