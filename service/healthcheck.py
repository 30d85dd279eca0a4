"""The container's HEALTHCHECK (``tokenstore-healthcheck``): is the local service answering
``/healthz``? Exit 0 if so; else exit 1 and say why on stderr.

It runs every few seconds for the life of a container, so it imports ``os``, ``socket`` and
``sys`` only: not the app, nor the settings module, nor ``http.client`` (whose ``email`` and
``ssl`` imports would double its cost). About 15 ms of CPU, most of it Python's own start-up,
against the app's 600 ms. It reads the two settings it needs from the environment itself; a
test keeps their defaults equal to ``Settings``'.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

HOST_VARIABLE, HOST_DEFAULT = "TOKENSTORE_HOST", "127.0.0.1"
PORT_VARIABLE, PORT_DEFAULT = "TOKENSTORE_PORT", "8080"
TIMEOUT_S = 2.0  # within the HEALTHCHECK's --timeout=3s
# A service listening on every address is probed on loopback.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def target(environ: Mapping[str, str]) -> tuple[str, int]:
    """The address to probe; ValueError names a bad variable."""
    host = environ.get(HOST_VARIABLE, HOST_DEFAULT)
    raw_port = environ.get(PORT_VARIABLE, PORT_DEFAULT)
    if not (raw_port.isascii() and raw_port.isdigit() and 1 <= int(raw_port) <= 65535):
        raise ValueError(f"{PORT_VARIABLE} has value {raw_port!r}: expected a port, 1-65535")
    return _ANY_ADDRESS.get(host, host), int(raw_port)


def probe(host: str, port: int, timeout_s: float = TIMEOUT_S) -> str | None:
    """None if ``GET /healthz`` answers 200, else why not. HTTP/1.0: the server closes the
    connection after its answer, and the status line is all we read."""
    url = f"http://{host}:{port}/healthz" if ":" not in host else f"http://[{host}]:{port}/healthz"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(b"GET /healthz HTTP/1.0\r\nHost: healthcheck\r\n\r\n")
            head = _status_line(connection)
    except OSError as exc:
        return f"{url}: {exc.strerror or exc or type(exc).__name__}"
    if not head:
        return f"{url}: the connection was closed without an answer"
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return f"{url}: not an HTTP answer: {head[:80]!r}"
    if parts[1] != b"200":
        return f"{url}: answered {parts[1].decode('ascii', 'replace')}, expected 200"
    return None


def _status_line(connection: socket.socket) -> bytes:
    received = b""
    while b"\r\n" not in received and len(received) < 1024:
        chunk = connection.recv(1024)
        if not chunk:
            break
        received += chunk
    return received.split(b"\r\n", 1)[0]


def main(environ: Mapping[str, str] = os.environ) -> int:
    try:
        problem = probe(*target(environ))
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        print(f"tokenstore healthcheck: unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
