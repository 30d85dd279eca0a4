"""What the gateway benchmarks share: a redis-server, one ``tokenstore serve`` process, an
admin client to issue and revoke tokens, percentiles.

The service gets an admin API client (a clients file): issuing, revoking and following the
feed take its credentials; /v1/authz (what nginx asks) needs none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis_servers import HOST, RedisServer, free_port

from bench import ROOT

READY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Tokenstore:
    url: str
    authorization: str  # an admin API client's credentials

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization}

    async def issue(self, session: aiohttp.ClientSession, user_id: str, app_id: str) -> Any:
        body = {"user_id": user_id, "app_id": app_id}
        url = f"{self.url}/v1/tokens"
        async with session.post(url, json=body, headers=self.headers) as response:
            if response.status != 201:
                raise RuntimeError(f"issue: {response.status} {await response.text()}")
            return await response.json()

    async def revoke(self, session: aiohttp.ClientSession, token_id: str) -> None:
        url = f"{self.url}/v1/tokens/{token_id}"
        async with session.delete(url, headers=self.headers) as response:
            if response.status != 200:
                raise RuntimeError(f"revoke: {response.status} {await response.text()}")


def _clients_file(directory: Path, client_id: str, secret: str) -> Path:
    entry = {
        "id": client_id,
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "permissions": ["admin"],
        "apps": ["*"],
    }
    path = directory / "clients.json"
    path.write_text(json.dumps({"clients": [entry]}))
    path.chmod(0o600)
    return path


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tokenstore exited with {proc.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/readyz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"tokenstore not ready after {READY_TIMEOUT}s:\n{log.read_text()}")


@contextlib.contextmanager
def tokenstore(env: Mapping[str, str] | None = None) -> Iterator[Tokenstore]:
    """A redis-server and one ``tokenstore serve`` on free loopback ports, stopped on exit."""
    with RedisServer() as redis, tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        secret = secrets.token_urlsafe(32)
        port = free_port()
        log = Path(tmp) / "tokenstore.log"
        service_env = {
            **os.environ,
            "TOKENSTORE_REDIS_URL": redis.url,
            "TOKENSTORE_HOST": HOST,
            "TOKENSTORE_PORT": str(port),
            "TOKENSTORE_LOG_LEVEL": "WARNING",
            "TOKENSTORE_CLIENTS_FILE": str(_clients_file(Path(tmp), "bench", secret)),
            **(env or {}),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"],
                cwd=ROOT,
                env=service_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://{HOST}:{port}"
                _wait_ready(url, proc, log)
                yield Tokenstore(url, aiohttp.encode_basic_auth("bench", secret))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
