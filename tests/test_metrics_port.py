"""The metrics port: Prometheus scrapes it without credentials, off the event loop; the
service's own ``/metrics`` needs an admin. Real processes on a real Redis."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import (
    ADMIN_HEADERS,
    ADMIN_ID,
    ADMIN_SECRET,
    Client,
    bearer,
    client_entry,
    issue,
    write_clients,
)
from redis_servers import RedisServer
from service_process import ServiceProcess

from service.api.metrics import METRICS
from service.api.responses import STORE
from service.metrics_server import MetricsServer

pytestmark = pytest.mark.slow

ALMOST = "tkc_almost-admin-secret"
SCRAPERS = 4
WINDOW_S = 1.2
TIMEOUT = aiohttp.ClientTimeout(total=10)


async def introspection_latencies(session: aiohttp.ClientSession, url: str, token: str) -> Any:
    """One introspection after another for WINDOW_S seconds: their latencies."""
    latencies: list[float] = []
    deadline = time.monotonic() + WINDOW_S
    while time.monotonic() < deadline:
        started = time.perf_counter()
        async with session.post(f"{url}/v1/introspect", json={"token": token}) as response:
            assert response.status == 200
            assert (await response.json())["active"] is True
        latencies.append(time.perf_counter() - started)
    return latencies


async def scrape_until(url: str, stop: asyncio.Event, statuses: list[int]) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        while not stop.is_set():
            async with session.get(url) as response:
                await response.read()
                statuses.append(response.status)


async def test_scrapers_hammering_the_metrics_port_do_not_stall_introspection(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # Two workers: each scrape reads and sums the other's snapshot, the costly kind.
    redis_server.flush()
    settings = {"TOKENSTORE_REDIS_URL": redis_server.url}
    with ServiceProcess(tmp_path, settings, ("--workers", "2")) as service:
        await service.wait_ready(listeners=2)
        async with aiohttp.ClientSession(headers=ADMIN_HEADERS, timeout=TIMEOUT) as session:
            for n in range(100):  # many label sets: a scrape with something to render
                body = {"user_id": f"u{n}", "app_id": f"app{n % 5}"}
                async with session.post(f"{service.url}/v1/tokens", json=body) as response:
                    token = (await response.json())["token"]
                async with session.get(f"{service.url}/v1/nowhere/{n % 7}"):
                    pass
            before = await introspection_latencies(session, service.url, token)
            stop, statuses = asyncio.Event(), list[int]()
            scrapers = [
                asyncio.create_task(scrape_until(service.metrics_url, stop, statuses))
                for _ in range(SCRAPERS)
            ]
            await asyncio.sleep(0.3)
            try:
                scraped = await introspection_latencies(session, service.url, token)
            finally:
                stop.set()
                await asyncio.gather(*scrapers)
            after = await introspection_latencies(session, service.url, token)
    assert statuses and set(statuses) == {200}
    # Side by side, loosely (a machine shared with other jobs: the quiet window that fared
    # worse is the reference). The open /metrics on the service's port, as it was, measured
    # 0.64 -> 6.4 ms median and a tenth of the introspections; the metrics port ~1x.
    quiet_p50 = max(statistics.median(before), statistics.median(after))
    quiet_count = min(len(before), len(after))
    scraped_p50 = statistics.median(scraped)
    assert scraped_p50 <= 3 * quiet_p50 + 0.0015, (quiet_p50, scraped_p50)
    assert len(scraped) >= 0.3 * quiet_count, (quiet_count, len(scraped))


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    """The tests' admin, and a client with every permission but admin."""
    almost = client_entry("almost", ALMOST, ["introspect", "issue", "read", "revoke"], ["*"])
    return write_clients(
        tmp_path / "clients.json", client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"]), almost
    )


async def test_the_service_port_serves_metrics_to_admins_only(client: Client) -> None:
    await issue(client, "alice", "web")
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(client.make_url("/metrics")) as response:
            assert response.status == 401
        wrong = {"Authorization": "Bearer not-a-client"}
        async with anonymous.get(client.make_url("/metrics"), headers=wrong) as response:
            assert response.status == 401
        async with anonymous.get(client.make_url("/metrics"), headers=bearer(ALMOST)) as response:
            assert response.status == 403
    response = await client.get("/metrics")  # the client fixture is the tests' admin
    assert response.status == 200
    assert 'tokenstore_tokens_issued_total{origin="minted"} 1.0' in await response.text()


async def test_the_metrics_port_serves_metrics_only_and_logs_no_request(
    client: Client, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    app = client.app
    assert app is not None
    await issue(client, "alice", "web")
    server = MetricsServer("127.0.0.1", 0, app[METRICS], app[STORE], asyncio.get_running_loop())
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
            async with session.get(f"{base}/metrics?token=tks_secret-in-query") as response:
                assert response.status == 200
            async with session.get(f"{base}/v1/tokens?token=tks_secret-in-query") as response:
                assert response.status == 404
            async with session.post(f"{base}/metrics", data=b"tks_secret-in-body") as response:
                assert response.status == 501
    finally:
        await asyncio.to_thread(server.stop)
    assert 'tokenstore_tokens_issued_total{origin="minted"} 1.0' in text
    assert "tokenstore_event_stream_length" in text
    out, err = capfd.readouterr()
    assert "tks_secret" not in caplog.text + out + err


async def test_a_metrics_port_in_use_stops_start_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = {"TOKENSTORE_METRICS_PORT": str(taken.getsockname()[1])}
        with ServiceProcess(tmp_path, settings) as service:
            assert await service.wait_exit(within=20) == 1, service.tail()
    errors = [line["msg"] for line in service.lines() if line["level"] == "ERROR"]
    assert errors == ["cannot listen for metrics: [Errno 98] Address already in use"]
