"""The hardened aiohttp protocol (service/protocol.py), and the aiohttp internals it relies on:
the runner must serve every connection with ``HardenedHandler``, built with the runner's
arguments."""

from __future__ import annotations

from aiohttp import web

from service.protocol import ClientLimits, HardenedHandler, HardenedRunner, HardenedServer

LIMITS = ClientLimits(header_timeout=1.0, max_connections=2)


async def test_the_runner_serves_connections_with_the_hardened_handler() -> None:
    runner = HardenedRunner(web.Application(), limits=LIMITS, access_log=None, keepalive_timeout=7)
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, HardenedServer)
        handler = server()
        assert type(handler) is HardenedHandler
        assert handler.keepalive_timeout == 7  # the runner's arguments reached it
        # What HardenedHandler reads of aiohttp's state to know when a head is awaited.
        assert handler._waiter is None and handler._request_count == 0
        assert len(handler._messages) == 0
    finally:
        await runner.cleanup()
