"""Process-wide logging: one JSON object per line on stderr, for every logger.

Each line has ``ts`` (UTC, ms), ``level``, ``logger``, ``msg`` and ``pid``; the ``extra``
fields of the call; ``request_id`` when logged while a request is handled; ``exc`` with the
traceback of an exception. Callers pass only bounded, non-secret values: never a token.
Records of aiohttp and asyncio, which may quote a request, are rewritten by
``redaction.RequestDataFilter`` to keep only safe facts.

Lines are written in batches (``BufferedStderrHandler``): a write to stderr per request line
cost a quarter of an introspection's time. A WARNING or worse is written at once, with the
lines before it; INFO lines wait at most ``FLUSH_AFTER_S``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from service.redaction import STANDARD_FIELDS, RequestDataFilter

# Set by service.api.observe for the duration of a request (and of the tasks it starts).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_PID = os.getpid()  # a worker is spawned, not forked: this module is imported in it anew
FLUSH_AFTER_S = 0.1
FLUSH_AT_BYTES = 64 * 1024


def _timestamp(created: float, cache: list[Any] = [-1, ""]) -> str:  # noqa: B006 (a cache)
    """ISO 8601 UTC with milliseconds; the part up to the second is computed once a second."""
    second = int(created)
    if cache[0] != second:
        cache[0] = second
        cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{cache[1]}.{int((created - second) * 1000):03d}+00:00"


def _line(created: float, levelno: int, logger: str, msg: str, pid: int | None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "ts": _timestamp(created),
        "level": logging.getLevelName(levelno),
        "logger": logger,
        "msg": msg,
        "pid": pid,
    }
    current = request_id.get()
    if current is not None:
        line["request_id"] = current
    return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = _line(
            record.created, record.levelno, record.name, record.getMessage(), record.process
        )
        line.update((k, v) for k, v in record.__dict__.items() if k not in STANDARD_FIELDS)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_fast(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """``logger.log(level, msg, extra=fields)``, the same line (JsonFormatter's), written
    straight to the handler when that is ours alone (as ``configure`` sets it up): the hot
    path skips LogRecord and the logging machinery, about a tenth of an introspection. Under
    any other set-up (a test's capture, a handler added by someone) it is ``logger.log``."""
    handler = _sole_handler(logger, level)
    if handler is None:
        logger.log(level, msg, extra=fields)
        return
    line = _line(time.time(), level, logger.name, msg, _PID)
    line.update(fields)
    handler.write(orjson.dumps(line, default=str).decode(), level)


def _sole_handler(logger: logging.Logger, level: int) -> BufferedStderrHandler | None:
    if not logger.isEnabledFor(level):
        return None
    node: logging.Logger | None = logger
    while node is not None:
        handlers = node.handlers
        if node.filters or (handlers and node.parent is not None):
            return None  # filters, or handlers below the root: the general path
        if not node.propagate or node.parent is None:
            break
        node = node.parent
    if node is None or len(node.handlers) != 1:
        return None
    handler = node.handlers[0]
    if type(handler) is not BufferedStderrHandler or level < handler.level:
        return None
    # configure()'s filter rewrites aiohttp's and asyncio's records only, never the caller's.
    if any(type(f) is not RequestDataFilter for f in handler.filters):
        return None
    return handler


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
        self.write(line, record.levelno)

    def write(self, line: str, levelno: int) -> None:
        """Queue one formatted line (``log_fast`` calls this without a LogRecord)."""
        self._lines.append(line)
        self._size += len(line)
        if levelno >= logging.WARNING or self._size >= FLUSH_AT_BYTES:
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
    # On the handler, not on loggers: a logger's filter misses the records of its children.
    handler.addFilter(RequestDataFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Our lines name no source file or thread: skip finding them for every record (what the
    # logging module's own comment on _srcfile advises to avoid that overhead).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    # Requests are logged by service.api.observe; aiohttp's own access log stays off (its line
    # holds the request line, query string included).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
