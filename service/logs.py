"""Process-wide logging: one JSON object per line on stderr, for every logger.

Each line has ``ts`` (UTC, ms), ``level``, ``logger``, ``msg`` and ``pid``; the ``extra``
fields of the call; ``request_id`` when logged while a request is handled; ``exc`` with the
traceback of an exception. Callers pass only bounded, non-secret values: never a token.

Lines are written in batches (``BufferedStderrHandler``): a write to stderr per request line
cost a quarter of an introspection's time. A WARNING or worse is written at once, with the
lines before it; INFO lines wait at most ``FLUSH_AFTER_S``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import orjson

# Set by service.api.observe for the duration of a request (and of the tasks it starts).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


FLUSH_AFTER_S = 0.1
FLUSH_AT_BYTES = 64 * 1024


def _timestamp(created: float, cache: list[Any] = [-1, ""]) -> str:  # noqa: B006 (a cache)
    """ISO 8601 UTC with milliseconds; the part up to the second is computed once a second."""
    second = int(created)
    if cache[0] != second:
        cache[0] = second
        cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{cache[1]}.{int((created - second) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
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


class BufferedStderrHandler(logging.Handler):
    """Writes formatted lines to a stream in batches: at once from WARNING up (after the lines
    before it), else once ``FLUSH_AT_BYTES`` are waiting or ``FLUSH_AFTER_S`` has passed (a
    timer on the running event loop; without one, at once). ``flush()`` at exit writes the rest."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flush_lock = threading.RLock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= FLUSH_AT_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_at(loop.time() + FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        with self._flush_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._lines:
                return
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self._size = 0
            stream = self._stream or sys.stderr  # looked up late: tests swap sys.stderr
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass  # stderr is gone (closed pipe): nothing left to tell


def configure(level: str) -> None:
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Our lines name no source file or thread: skip finding them for every record (what the
    # logging module's own comment on _srcfile advises to avoid that overhead).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    # Requests are logged by service.api.observe; aiohttp's own access log stays off.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
