"""The hardened aiohttp protocol (service/protocol.py), and the aiohttp internals it relies on:
the runner must serve every connection with ``HardenedHandler``, built with the runner's
arguments."""

from __future__ import annotations

from aiohttp import web

from service.protocol import HardenedHandler, HardenedRunner, HardenedServer


async def test_the_runner_serves_connections_with_the_hardened_handler() -> None:
    runner = HardenedRunner(web.Application(), access_log=None, keepalive_timeout=7)
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, HardenedServer)
        handler = server()
        assert type(handler) is HardenedHandler
        assert handler.keepalive_timeout == 7  # the runner's arguments reached it
    finally:
        await runner.cleanup()
