"""Clients are timed out and counted, on a real ``tokenstore serve`` process over raw sockets:
an idle keep-alive connection is closed, a head or a body sent too slowly is cut off, and
connections beyond the limit are answered 503 and closed. Small settings keep it fast."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from helpers import ADMIN_SECRET
from redis_servers import HOST
from service_process import ServiceProcess

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
KEEPALIVE = 1.5
MAX_CONNECTIONS = 5
SLACK = 1.5  # a busy test machine may be late by this much; never early
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    settings = {
        "TOKENSTORE_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "TOKENSTORE_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "TOKENSTORE_KEEPALIVE_TIMEOUT": str(KEEPALIVE),
        "TOKENSTORE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with ServiceProcess(Path(tmp_path_factory.mktemp("timeouts")), settings) as process:
        asyncio.run(process.wait_ready())
        yield process


@asynccontextmanager
async def _connection(service: ServiceProcess) -> AsyncIterator[Stream]:
    reader, writer = await asyncio.open_connection(HOST, service.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response's status and body (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert status is not None and length is not None, head
    return int(status[1]), await reader.readexactly(int(length[1]))


async def _closed_after(reader: asyncio.StreamReader, start: float, within: float) -> float:
    """Seconds from ``start`` until the server closed the connection (EOF or reset)."""
    async with asyncio.timeout(within):
        try:
            while await reader.read(4096):
                pass
        except ConnectionResetError:
            pass
    return time.monotonic() - start


async def _served(service: ServiceProcess, stack: AsyncExitStack) -> Stream:
    """A connection that was answered 200 and stays open (closed with ``stack``); retried while
    the server still counts connections that a previous test closed."""
    for _ in range(40):
        reader, writer = await stack.enter_async_context(_connection(service))
        writer.write(HEALTHZ)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionResetError):
            if (await _response(reader))[0] == 200:
                return reader, writer
        writer.close()
        await asyncio.sleep(0.05)
    raise AssertionError("no connection was served")


async def test_an_idle_keep_alive_connection_is_closed(service: ServiceProcess) -> None:
    async with AsyncExitStack() as stack:
        after_a_request, _ = await _served(service, stack)
        never_sent_a_byte, _ = await stack.enter_async_context(_connection(service))
        start = time.monotonic()
        for elapsed in await asyncio.gather(
            _closed_after(after_a_request, start, KEEPALIVE + SLACK),
            _closed_after(never_sent_a_byte, start, KEEPALIVE + SLACK),
        ):
            assert elapsed >= KEEPALIVE - 0.2


async def test_a_head_sent_too_slowly_is_cut_off(service: ServiceProcess) -> None:
    trickle = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
    async with _connection(service) as (reader, writer):
        started = time.monotonic()

        async def slowly() -> None:
            for byte in trickle:  # a byte every 50 ms: the head would take 5 s
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(slowly())
        try:
            elapsed = await _closed_after(reader, started, HEADER_TIMEOUT + SLACK)
        finally:
            sender.cancel()
    # Cut by the head timeout, well before the (longer) idle timeout could have done it.
    assert HEADER_TIMEOUT - 0.1 <= elapsed < KEEPALIVE


async def test_a_body_sent_too_slowly_is_a_408_and_closed(service: ServiceProcess) -> None:
    async with _connection(service) as (reader, writer):
        writer.write(
            b"POST /v1/introspect HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN_SECRET.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        async with asyncio.timeout(BODY_TIMEOUT + SLACK):
            status, body = await _response(reader)
        assert status == 408 and b'"request_timeout"' in body
        assert time.monotonic() - started >= BODY_TIMEOUT - 0.1
        await _closed_after(reader, started, 2 * BODY_TIMEOUT + SLACK)  # lingering is bounded


async def test_connections_beyond_the_limit_get_503_and_are_closed(
    service: ServiceProcess,
) -> None:
    async with AsyncExitStack() as stack:
        held = [await _served(service, stack) for _ in range(MAX_CONNECTIONS)]
        # Answered at once, before anything is read (a client that has sent its request by
        # then may see the connection reset instead: the server reads nothing of it).
        async with _connection(service) as (reader, _writer):
            async with asyncio.timeout(SLACK):
                status, body = await _response(reader)
                assert await reader.read() == b""  # and closed
        assert status == 503 and b'"unavailable"' in body
        async with _connection(service) as (reader, writer):
            writer.write(HEALTHZ)
            async with asyncio.timeout(SLACK):
                with contextlib.suppress(ConnectionResetError):
                    assert (await reader.read()).startswith(b"HTTP/1.1 503 ")
        # The held ones are still served; closing one makes room for a new one.
        for reader, writer in held:
            writer.write(HEALTHZ)
            assert (await _response(reader))[0] == 200
        held[0][1].close()
        await _served(service, stack)
