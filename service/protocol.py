"""aiohttp's per-connection protocol, hardened: what the service answers to a request aiohttp
cannot parse.

aiohttp answers a malformed request with a text body that quotes the offending bytes (a header
line with its token, a query with its secret): ``HardenedHandler.handle_error`` answers the
default JSON error instead, naming only the exception's class. (aiohttp still logs it; the
record is rewritten by ``redaction.RequestDataFilter``.)

aiohttp builds its protocol objects in ``web.Server.__call__`` from the keyword arguments
the runner collected (``Server._kwargs``); ``HardenedRunner`` swaps in a server that builds
``HardenedHandler`` with the same arguments. tests/test_protocol.py checks that this holds.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from service.api.errors import protocol_error


class HardenedHandler(web.RequestHandler):
    __slots__ = ()

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
    def __call__(self) -> web.RequestHandler:
        return HardenedHandler(self, loop=self._loop, **self._kwargs)


class HardenedRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are served by ``HardenedHandler``."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app; its arguments are kept
        kwargs: dict[str, Any] = plain._kwargs
        return HardenedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **kwargs,
        )
