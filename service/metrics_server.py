"""The metrics port (``TOKENSTORE_METRICS_PORT``): open ``GET /metrics`` for Prometheus, served
by one plain thread so that no scrape holds the event loop that answers introspections.

- The event loop does only what must be done there (``api.metrics.exposition``: a copy of this
  process's numbers, the stream gauges' Redis read); reading the other workers' snapshots,
  summing and formatting happen in this thread.
- One scrape at a time, and at most one every ``MIN_SCRAPE_INTERVAL`` seconds: the thread
  shares the interpreter lock with the loop, so scrapers hammering the port queue behind each
  other instead of taking the loop's time. Prometheus scrapes every 15 s or so.
- Nothing of a request is logged (http.server would print its line, query string included).

With several workers each binds the port with SO_REUSEPORT, like the service's port, and any
of them answers with the sum of all.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from service.api.metrics import exposition
from service.metrics import Metrics
from service.store import TokenStore

MIN_SCRAPE_INTERVAL = 0.05  # 20 scrapes a second at most, whoever asks
CLIENT_TIMEOUT = 2.0  # a scraper that connects and sends nothing holds the port this long
log = logging.getLogger("tokenstore.metrics")


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        store: TokenStore,
        loop: asyncio.AbstractEventLoop,
        *,
        reuse_port: bool = False,
        scrape_timeout: float = 5.0,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._loop = loop
        self._scrape_timeout = scrape_timeout
        self._server = _Server((host, port), _Handler, self, reuse_port)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tokenstore-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def scrape(self) -> bytes:
        """The Prometheus text, in the server's thread; TimeoutError if the loop is stuck."""
        parts = asyncio.run_coroutine_threadsafe(exposition(self._metrics, self._store), self._loop)
        own, extra = parts.result(timeout=self._scrape_timeout)
        return self._metrics.text(own, extra)


class _Server(HTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: MetricsServer,
        reuse_port: bool,
    ) -> None:
        self.owner = owner
        self._reuse_port = reuse_port
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self._reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        started = time.monotonic()
        super().process_request(request, client_address)
        time.sleep(max(0.0, MIN_SCRAPE_INTERVAL - (time.monotonic() - started)))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback with the exception's message; a client's bytes may
        # be quoted there.
        log.warning("metrics request failed", extra={"remote": client_address[0]})


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT
    server_version = "tokenstore"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"not found: the metrics port serves GET /metrics only\n")
            return
        try:
            body = self.server.owner.scrape()
        except Exception as exc:  # a stuck loop, Redis is handled inside: never a traceback
            log.warning("metrics scrape failed", extra={"error": type(exc).__name__})
            self._answer(503, b"metrics unavailable; retry\n", retry_after=True)
            return
        self._answer(200, body, content_type=CONTENT_TYPE_PLAIN_0_0_4)

    def _answer(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        retry_after: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if retry_after:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds the query string: never written anywhere
