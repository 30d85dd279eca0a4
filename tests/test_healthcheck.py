"""``tokenstore-healthcheck``, the image's HEALTHCHECK: exit 0 when /healthz answers 200, else
1 and why, without importing the app. (Its CPU cost: README, "Container image"; in the image:
tests/test_image.py.)"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from redis_servers import HOST, free_port

from service import healthcheck
from service.settings import Settings


async def _serve(status: int) -> AsyncIterator[int]:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.fixture
async def healthy_port() -> AsyncIterator[int]:
    async for port in _serve(200):
        yield port


@pytest.fixture
async def failing_port() -> AsyncIterator[int]:
    async for port in _serve(503):
        yield port


async def run_check(port: int | str, host: str = HOST) -> subprocess.CompletedProcess[str]:
    """The console script, in a process of its own, as the container engine runs it."""
    env = {"TOKENSTORE_HOST": host, "TOKENSTORE_PORT": str(port)}
    command = [
        sys.executable,
        "-c",
        "from service.healthcheck import main; raise SystemExit(main())",
    ]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=30
    )


async def test_passes_when_healthz_answers_200(healthy_port: int) -> None:
    done = await run_check(healthy_port)
    assert (done.returncode, done.stderr) == (0, "")


async def test_a_service_listening_everywhere_is_probed_on_loopback(healthy_port: int) -> None:
    assert (await run_check(healthy_port, host="0.0.0.0")).returncode == 0


async def test_fails_saying_what_it_was_answered(failing_port: int) -> None:
    done = await run_check(failing_port)
    assert done.returncode == 1
    expected = f"unhealthy: http://{HOST}:{failing_port}/healthz: answered 503, expected 200"
    assert expected in done.stderr


async def test_fails_saying_nothing_listens() -> None:
    port = free_port()
    done = await run_check(port)
    assert done.returncode == 1
    assert f"unhealthy: http://{HOST}:{port}/healthz: Connection refused" in done.stderr


async def test_fails_saying_the_answer_was_not_http() -> None:
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()
        port = server.getsockname()[1]

        def answer_garbage() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"-ERR wrong protocol\r\n")

        checking = asyncio.create_task(run_check(port))
        await asyncio.to_thread(answer_garbage)
        done = await checking
    assert done.returncode == 1
    assert "not an HTTP answer: b'-ERR wrong protocol'" in done.stderr


async def test_a_bad_port_setting_is_named() -> None:
    done = await run_check("eighty")
    assert done.returncode == 1
    assert "TOKENSTORE_PORT has value 'eighty'" in done.stderr


def test_its_defaults_are_the_settings_defaults() -> None:
    defaults = Settings()
    assert defaults.host == healthcheck.HOST_DEFAULT
    assert int(healthcheck.PORT_DEFAULT) == defaults.port


def test_it_imports_neither_the_app_nor_a_library() -> None:
    """What keeps it cheap: the standard library only (measured in the README)."""
    show = (
        "import sys, json; before = set(sys.modules); import service.healthcheck; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", show], capture_output=True, text=True, timeout=30, check=True
    )
    imported = {name.split(".")[0] for name in json.loads(done.stdout)} - {"service"}
    assert imported <= sys.stdlib_module_names
    assert not imported & {"http", "email", "ssl", "urllib", "asyncio", "json", "logging"}
