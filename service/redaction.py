"""Log records that may carry request data, rewritten to keep only facts known to be safe.

aiohttp puts the raw bytes of a request it refuses into its exception's message (the whole
``Authorization: Bearer <token>`` line, the query string with ``token=``), and logs it with a
traceback; its access log line holds the request line, and asyncio's own messages hold the
reprs of exceptions and callbacks. ``RequestDataFilter``, on the service's log handler
(``logs.configure``), rewrites every record of the ``aiohttp`` and ``asyncio`` loggers:

- the message becomes a fixed text (aiohttp's known constant messages, or "withheld"); the
  arguments and any extra fields are dropped;
- an exception becomes its class name (``error``) and a traceback of code locations and class
  names only (``exc``), never its message; a refused request (aiohttp's
  ``HttpProcessingError``, or a body it could not decode) keeps its class and status, and is
  logged at INFO at most (it is the client's error, not the service's);
- ``remote`` is kept where aiohttp names the peer, if it is an IP address.

``safe_traceback`` is also what the service logs for an unexpected exception of its own.
"""

from __future__ import annotations

import ipaddress
import logging
import traceback
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

WITHHELD = "aiohttp message withheld (it may hold request data)"
REFUSED = "malformed request refused"
# aiohttp's messages that are constant text (the format string, without its arguments).
_AIOHTTP_MESSAGES = {
    "Error handling request from %s": "error handling a request",
    "Unhandled exception": "unhandled exception",
    "Request handler timed out.": "request handler timed out",
    "Ignored premature client disconnection": "client disconnected",
    "Ignored premature client disconnection 2": "client disconnected",
    "Ignored premature client disconnection.": "client disconnected",
    "Uncompleted request.": "uncompleted request",
    "Start lingering close timer for %s sec.": "lingering before close",
    "Exception in eof callback": "exception in eof callback",
    "Missing return statement on request handler": "handler returned no response",
}
_NAMES_REMOTE = "Error handling request from %s"
# The client's errors: a request aiohttp could not parse, a body it could not decode.
_REFUSALS = (HttpProcessingError, RequestPayloadError)
# The attributes every LogRecord has; any other is an ``extra`` field of the call.
STANDARD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class RequestDataFilter(logging.Filter):
    """Rewrites the records of aiohttp's and asyncio's loggers (see the module docstring);
    leaves every other record as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == "aiohttp" or name.startswith("aiohttp."):
            _rewrite(record, _aiohttp_message(record), _remote(record))
        elif name == "asyncio" or name.startswith("asyncio."):
            # asyncio's first line is its own text; the lines after it are reprs of objects.
            _rewrite(record, str(record.msg).split("\n", 1)[0], None)
        else:
            return True
        # A refused request may have been lowered below the level the service logs at.
        return record.levelno >= logging.getLogger().getEffectiveLevel()


def _aiohttp_message(record: logging.LogRecord) -> str:
    msg = record.msg
    return _AIOHTTP_MESSAGES.get(msg, WITHHELD) if isinstance(msg, str) else WITHHELD


def _remote(record: logging.LogRecord) -> str | None:
    if record.msg != _NAMES_REMOTE or not record.args or not isinstance(record.args, tuple):
        return None
    candidate = str(record.args[0])
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return candidate


def _rewrite(record: logging.LogRecord, msg: str, remote: str | None) -> None:
    exc = record.exc_info[1] if record.exc_info else None
    facts: dict[str, Any] = {}
    if remote is not None:
        facts["remote"] = remote
    if isinstance(exc, _REFUSALS):
        msg = REFUSED
        facts.update(error=type(exc).__name__, status=getattr(exc, "code", 400))
        record.levelno = min(record.levelno, logging.INFO)
        record.levelname = logging.getLevelName(record.levelno)
    elif exc is not None:
        facts.update(error=type(exc).__name__, exc=safe_traceback(exc))
    for key in [k for k in record.__dict__ if k not in STANDARD_FIELDS]:
        del record.__dict__[key]  # extra fields: aiohttp's access log puts the request line there
    record.__dict__.update(facts)
    record.msg, record.args = msg, ()
    record.exc_info, record.exc_text = None, None


def safe_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and of the exceptions it was raised from: code locations and
    class names, no exception message (it may quote the request)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context
    parts: list[str] = []
    for item in reversed(chain):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(item.__traceback__)))
        parts.append(f"{_qualified(type(item))} (message withheld)\n")
    return "".join(parts).rstrip("\n")


def _qualified(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
