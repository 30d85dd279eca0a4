"""aiohttp's per-connection protocol, hardened: clients are timed out and counted, and a request
aiohttp cannot parse is answered without quoting it.

- **Head timeout**: once the first byte of a request head arrives on an idle connection, the
  whole head must arrive within ``header_timeout`` seconds, or the connection is closed (a
  client trickling a header a byte at a time holds nothing for long).
- **Idle timeout**: aiohttp's ``keepalive_timeout``, which also closes a connection that never
  sends a byte (the runner passes it on; see runner.py). **Body timeout**: api/bodies.py.
- **Connection limit**: past ``max_connections`` open connections, a new one is answered 503
  at once and closed, before anything of it is read: file descriptors cannot run out.
- **Malformed requests**: aiohttp answers them with a text body quoting the offending bytes (a
  header line with its token); ``HardenedHandler.handle_error`` answers the default JSON error
  instead, naming only the exception's class. (aiohttp still logs it; the record is rewritten
  by ``redaction.RequestDataFilter``.)

aiohttp builds its protocol objects in ``web.Server.__call__`` from the keyword arguments the
runner collected (``Server._kwargs``); ``HardenedRunner`` swaps in a server that builds
``HardenedHandler`` with the same arguments. Knowing when a head is awaited and when one was
parsed uses ``RequestHandler._waiter``, ``_request_count`` and ``_messages``: tests/test_protocol.py
checks that these hold, tests/test_client_timeouts.py that it all works on a real process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.web_request import BaseRequest

from service.api.errors import protocol_error

log = logging.getLogger("tokenstore.connections")
REFUSAL_LOG_EVERY_S = 10.0
_OVER_LIMIT_BODY = orjson.dumps(
    {"error": "unavailable", "message": "too many open connections; retry later"}
)
OVER_LIMIT = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_OVER_LIMIT_BODY)).encode() + b"\r\n\r\n" + _OVER_LIMIT_BODY
)


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float
    max_connections: int


class Connections:
    """The open connections of one serving process, counted against the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._refused = 0
        self._logged_at = -REFUSAL_LOG_EVERY_S

    def admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_EVERY_S:  # at most a line every 10 s
            log.warning(
                "connection limit reached: new connections answered 503",
                extra={"limit": self.limit, "refused": self._refused},
            )
            self._logged_at, self._refused = now, 0
        return False

    def release(self) -> None:
        self.open -= 1


class HardenedHandler(web.RequestHandler):
    __slots__ = ("_admitted", "_connections", "_head_timeout", "_head_timer")

    def __init__(
        self, manager: web.Server, *, limits: ClientLimits, connections: Connections, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._connections = connections
        self._head_timeout = limits.header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._connections.admit():
            cast(asyncio.Transport, transport).write(OVER_LIMIT)
            transport.close()  # after the write; nothing of the request is read
            return
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return  # refused: aiohttp never knew of it
        self._admitted = False
        self._connections.release()
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        heads = self._request_count
        awaiting = self._awaiting_head()
        super().data_received(data)
        if self._request_count != heads:  # a head was parsed (or refused): its clock stops
            self._stop_head_clock()
        elif awaiting and self._head_timer is None and data:
            loop = asyncio.get_running_loop()
            self._head_timer = loop.call_later(self._head_timeout, self._head_too_slow, heads)

    def _awaiting_head(self) -> bool:
        """Idle between requests (or before the first), so any byte begins a request head."""
        waiter = self._waiter
        if waiter is not None:
            return not waiter.done()
        return self._request_count == 0 and not self._messages

    def _head_too_slow(self, heads: int) -> None:
        self._head_timer = None
        if self._request_count == heads and self.transport is not None:
            log.info(
                "request head too slow: connection closed", extra={"after_s": self._head_timeout}
            )
            self.force_close()

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs (rewritten by our filter) and raises if a response has begun.
        super().handle_error(request, status, exc, "")
        return protocol_error(status, exc)


class HardenedServer(web.Server):
    def __init__(self, *args: Any, limits: ClientLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._open = Connections(limits.max_connections)

    def __call__(self) -> web.RequestHandler:
        return HardenedHandler(
            self, loop=self._loop, limits=self._limits, connections=self._open, **self._kwargs
        )


class HardenedRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are served by ``HardenedHandler``."""

    def __init__(self, app: web.Application, *, limits: ClientLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app; its arguments are kept
        kwargs: dict[str, Any] = plain._kwargs
        return HardenedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            limits=self._limits,
            **kwargs,
        )
