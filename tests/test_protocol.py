"""The hardened aiohttp protocol (service/protocol.py), and the aiohttp internals it relies on:
the runner must serve every connection with ``HardenedHandler``, built with the runner's
arguments."""

from __future__ import annotations

import resource

import pytest
from aiohttp import web

from service import runner
from service.protocol import ClientLimits, HardenedHandler, HardenedRunner, HardenedServer
from service.settings import Settings

LIMITS = ClientLimits(header_timeout=1.0, max_connections=2)


async def test_the_runner_serves_connections_with_the_hardened_handler() -> None:
    app_runner = HardenedRunner(
        web.Application(), limits=LIMITS, access_log=None, keepalive_timeout=7
    )
    await app_runner.setup()
    try:
        server = app_runner.server
        assert isinstance(server, HardenedServer)
        handler = server()
        assert type(handler) is HardenedHandler
        assert handler.keepalive_timeout == 7  # the runner's arguments reached it
        # What HardenedHandler reads of aiohttp's state to know when a head is awaited.
        assert handler._waiter is None and handler._request_count == 0
        assert len(handler._messages) == 0
    finally:
        await app_runner.cleanup()


def test_the_open_file_limit_makes_room_for_the_connection_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda kind, limits: raised.append(limits))
    runner._check_file_limit(Settings(max_connections=1000, redis_pool_size=64))
    assert raised == [(1128, 4096)] and not caplog.records  # 1000 + 64 + 64, within the hard
    runner._check_file_limit(Settings(max_connections=5000))
    assert raised[-1] == (4096, 4096)
    assert [r.getMessage() for r in caplog.records] == [
        "the open-file limit is below what the connection limit needs"
    ]
