"""The service as a real child process (``python -m service serve``) for process-level tests.

It listens on a free loopback port, knows the tests' admin client (``helpers.ADMIN_HEADERS``),
logs JSON to a file, and runs in a session of its own so that it and its workers are killed
together (by its process group id) if a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from helpers import ADMIN_ID, ADMIN_SECRET, client_entry, write_clients
from redis_servers import HOST, free_port

from service.metrics import METRICS_DIR_ENV


class ServiceProcess:
    def __init__(self, workdir: Path, settings: dict[str, str], args: tuple[str, ...] = ()):
        self.port = free_port()
        self.metrics_port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "service.log"
        clients = workdir / "clients.json"
        write_clients(clients, client_entry(ADMIN_ID, ADMIN_SECRET, ["admin"], ["*"]))
        ours = ("TOKENSTORE_", METRICS_DIR_ENV)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        self.env = inherited | {
            "TOKENSTORE_HOST": HOST,
            "TOKENSTORE_PORT": str(self.port),
            "TOKENSTORE_METRICS_PORT": str(self.metrics_port),
            "TOKENSTORE_CLIENTS_FILE": str(clients),
            "TMPDIR": str(workdir),  # where a supervisor makes its metrics directory
            **settings,
        }
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Self:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.kill_group()
        self.proc.wait(timeout=10)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    async def wait_exit(self, within: float) -> int:
        """The exit code; subprocess.TimeoutExpired if still running after ``within`` s."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, within)

    def lines(self) -> list[dict[str, Any]]:
        """Every line logged so far; each must be one JSON object."""
        complete = self.log_path.read_text(errors="replace").split("\n")[:-1]
        return [json.loads(line) for line in complete if line.strip()]

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    async def wait_ready(self, listeners: int = 1, within: float = 15.0) -> None:
        """Until ``listeners`` processes said they listen and ``/readyz`` answers 200."""
        try:
            async with asyncio.timeout(within), aiohttp.ClientSession() as session:
                while len(self.listening_pids()) < listeners or not await self._ready(session):
                    assert self.proc is not None and self.proc.poll() is None, self.tail()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"service not ready in {within} s:\n{self.tail()}") from None

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.url}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def listening_pids(self) -> list[int]:
        return [line["pid"] for line in self.lines() if line["msg"] == "listening"]
