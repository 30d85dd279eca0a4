"""The service as a real process, started as the README's first command starts it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from redis_servers import free_port


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSTORE_")}
    # A free metrics port: the default one may be taken by another test's process.
    return {**env, "TOKENSTORE_METRICS_PORT": str(free_port()), **overrides}


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def embedded_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"],
        env=_env(TOKENSTORE_PORT=str(port)),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if _get(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_starts_on_the_embedded_store_and_says_so(
    embedded_process: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = embedded_process
    assert _get(f"http://127.0.0.1:{port}/readyz") == 200
    proc.terminate()
    _out, err = proc.communicate(timeout=10)
    assert "EMBEDDED IN-MEMORY store" in err
    assert "Nothing is persisted" in err


def test_bad_setting_stops_start_up_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        env=_env(TOKENSTORE_MAX_TTL="forever"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "TOKENSTORE_MAX_TTL=forever: must be a whole number of seconds" in result.stderr


def test_healthcheck_command(embedded_process: tuple[subprocess.Popen[str], int]) -> None:
    _proc, port = embedded_process
    ok = subprocess.run(
        [sys.executable, "-m", "service", "healthcheck"],
        env=_env(TOKENSTORE_PORT=str(port)),
        timeout=30,
    )
    assert ok.returncode == 0
    down = subprocess.run(
        [sys.executable, "-m", "service", "healthcheck"],
        env=_env(TOKENSTORE_PORT=str(free_port())),
        timeout=30,
    )
    assert down.returncode == 1
