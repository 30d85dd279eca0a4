"""A real ``tokenstore serve`` process fed every kind of malformed request aiohttp refuses, over
raw sockets, each carrying a secret: every one is answered 4xx (never a 500), no answer echoes
the secret, and the process's whole log (at DEBUG) never holds it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from helpers import ADMIN_SECRET
from redis_servers import HOST
from service_process import ServiceProcess

MARK = "LEAKCHECK"
SECRET = f"tks_{MARK}_0123456789abcdefghijklmnopqrstuv"
AUTH = f"Authorization: Bearer {ADMIN_SECRET}\r\n"
GET = "GET / HTTP/1.1\r\nHost: t\r\n"
POST = "POST /v1/introspect HTTP/1.1\r\nHost: t\r\n"


def _requests() -> dict[str, bytes]:
    s = SECRET
    texts = {
        # header values and names
        "control byte in a header value": f"GET /v1/tokens HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {s}\x01\r\n\r\n",
        "NUL in a header value": f"{GET}Authorization: Bearer {s}\x00x\r\n\r\n",
        "control byte in Host": f"GET / HTTP/1.1\r\nHost: {s}\x01\r\n\r\n",
        "over-long header, secret first": f"{GET}Authorization: Bearer {s}{'A' * 9000}\r\n\r\n",
        "over-long header, secret last": f"{GET}Authorization: Bearer {'A' * 9000}{s}\r\n\r\n",
        "header without a colon": f"{GET}Authorization Bearer {s}\r\n\r\n",
        "space before the colon": f"{GET}Authorization : Bearer {s}\r\n\r\n",
        "bad character in a header name": f"{GET}X@{s}: b\r\n\r\n",
        "LF without CR": f"{GET}Authorization: Bearer {s}\n\r\n",
        "obsolete line folding": f"{GET}X-A: b\r\n  {s}\r\n\r\n",
        "too many headers": GET + "".join(f"X-{i}: {s}\r\n" for i in range(200)) + "\r\n",
        # request line
        "over-long request line": f"GET /x?token={s}{'a' * 9000} HTTP/1.1\r\nHost: t\r\n\r\n",
        "bad character in the query": f"GET /v1/authz?token={s}\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
        "space in the target": f"GET /x?token={s} x HTTP/1.1\r\nHost: t\r\n\r\n",
        "invalid method": f"G@T /x?token={s} HTTP/1.1\r\nHost: t\r\n\r\n",
        "the secret as the method": f"{s} /x HTTP/1.1\r\nHost: t\r\n\r\n",
        "invalid HTTP version": f"GET /x?token={s} HTTP/9.Z\r\nHost: t\r\n\r\n",
        "absolute URI without a host": f"GET http://[{s}/ HTTP/1.1\r\nHost: t\r\n\r\n",
        "CONNECT to a bad authority": f"CONNECT {s}:x:y HTTP/1.1\r\nHost: t\r\n\r\n",
        # framing
        "duplicate Content-Length": f"{POST}Content-Length: 1\r\nContent-Length: 2{s}\r\n\r\nab",
        "invalid Content-Length": f"{POST}Content-Length: {s}\r\n\r\nab",
        "invalid Transfer-Encoding": f"{POST}Transfer-Encoding: {s}\r\n\r\n",
        "Content-Length with Transfer-Encoding": f"{POST}"
        f"Transfer-Encoding: chunked\r\nContent-Length: 3\r\nX: {s}\r\n\r\n0\r\n\r\n",
        "bad chunk size": f"{POST}Transfer-Encoding: chunked\r\n\r\nZZ{s}\r\n",
        "bad chunk size, authenticated": f"{POST}{AUTH}Transfer-Encoding: chunked\r\n\r\n"
        f'5\r\n{{"tok\r\nZZ{s}\r\n',
        "bad chunk extension": f"{POST}Transfer-Encoding: chunked\r\n\r\n5;{s}\x01\r\nabcde\r\n",
        "bad trailer": f"{POST}Transfer-Encoding: chunked\r\n\r\n0\r\nX: {s}\x01\r\n\r\n",
        # bodies the service itself refuses
        "undecodable gzip body": f"{POST}{AUTH}Content-Encoding: gzip\r\nConnection: close\r\n"
        f"Content-Length: {len(s)}\r\n\r\n{s}",
        "unknown form charset": f"POST /oauth2/introspect HTTP/1.1\r\nHost: t\r\n{AUTH}"
        f"Content-Type: application/x-www-form-urlencoded; charset=x{s}\r\n"
        f"Connection: close\r\nContent-Length: {len(s) + 6}\r\n\r\ntoken={s}",
        "body over the limit": f"{POST}{AUTH}Connection: close\r\nContent-Length: 70000\r\n\r\n"
        + (s * 70000)[:70000],
        "invalid JSON": f"{POST}{AUTH}Connection: close\r\nContent-Length: {len(s) + 14}\r\n\r\n"
        f'{{"token": "{s}" x',
    }
    binary = {"TLS handshake bytes": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + s.encode()}
    return {name: text.encode("latin-1") for name, text in texts.items()} | binary


async def _exchange(port: int, request: bytes) -> bytes:
    """Everything answered, until the server closes (or 5 s pass)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(-1)
    except (ConnectionResetError, TimeoutError):
        return b""
    finally:
        writer.close()


def _status(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(match[1]) if match else None


async def test_malformed_requests_get_4xx_and_never_log_or_echo_the_secret(
    tmp_path: Path,
) -> None:
    requests = _requests()
    with ServiceProcess(tmp_path, {"TOKENSTORE_LOG_LEVEL": "DEBUG"}) as service:
        await service.wait_ready()
        answers = await asyncio.gather(*(_exchange(service.port, r) for r in requests.values()))
        service.terminate()  # its last lines are written at exit
        assert await service.wait_exit(within=10) == 0
    statuses = {name: _status(answer) for name, answer in zip(requests, answers, strict=True)}
    log = service.log_path.read_text(errors="replace")
    problems = {
        "not 4xx": {n: s for n, s in statuses.items() if s is None or not 400 <= s < 500},
        "secret echoed": [n for n, a in zip(requests, answers, strict=True) if MARK.encode() in a],
        "log lines with the secret": [line[:160] for line in log.splitlines() if MARK in line],
        "log lines with the admin secret": [
            line for line in log.splitlines() if ADMIN_SECRET in line
        ],
    }
    assert {name: found for name, found in problems.items() if found} == {}
    # aiohttp did log each refusal (the filter rewrote the lines, it did not drop them).
    refused = [line for line in service.lines() if line["msg"] == "malformed request refused"]
    assert len(refused) >= len(requests) - 4  # the four the service answers itself are not
    assert all(line["status"] == 400 and line["error"] for line in refused)
