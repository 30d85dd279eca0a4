"""What every benchmark needs: child processes, credentials, Redis snapshots, statistics.

Every process started here is stopped in a ``finally`` (context managers); every wait is
bounded by a deadline. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
from processes import Managed, terminate
from redis_servers import RedisServer, free_port

from bench import ROOT

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# --- credentials (issue #3) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """An admin API client. Today the service ignores it; once issue #3 lands it requires it."""

    client_id: str
    secret: str
    path: Path

    @property
    def authorization(self) -> str:
        pair = f"{self.client_id}:{self.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization}


def write_clients_file(directory: Path, client_id: str = "bench") -> Credentials:
    secret = secrets.token_urlsafe(32)
    entry = {
        "id": client_id,
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "permissions": ["admin"],
        "apps": ["*"],
    }
    path = directory / "clients.json"
    path.write_text(json.dumps({"clients": [entry]}))
    path.chmod(0o600)
    return Credentials(client_id, secret, path)


# --- child HTTP processes --------------------------------------------------------------------


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no log: {exc}>"


class HttpProcess(Managed):
    """One child process serving HTTP on ``port``; ready once ``ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/healthz",
    ) -> None:
        self.name = name
        self.port = port
        self._argv = list(argv)
        self._env = {**os.environ, **(env or {})}
        self._ready_path = ready_path
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix=f"bench-{self.name}-")
        log_path = Path(self._dir.name) / "log"
        self._log = log_path.open("wb")
        self._proc = subprocess.Popen(
            self._argv,
            cwd=ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode}:\n{_tail(log_path)}"
                )
            try:
                with urllib.request.urlopen(self.url + self._ready_path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT}s:\n{_tail(log_path)}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def tokenstore_command() -> list[str]:
    """``tokenstore serve`` from this interpreter's environment."""
    script = Path(sys.executable).with_name("tokenstore")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "service", "serve"]


def service_env(redis_url: str, port: int, credentials: Credentials) -> dict[str, str]:
    return {
        "TOKENSTORE_REDIS_URL": redis_url,
        "TOKENSTORE_HOST": HOST,
        "TOKENSTORE_PORT": str(port),
        "TOKENSTORE_METRICS_PORT": str(free_port()),
        "TOKENSTORE_LOG_LEVEL": "INFO",  # as compose and the manifests ship it
        "TOKENSTORE_CLIENTS_FILE": str(credentials.path),
    }


def service_process(
    redis_url: str,
    credentials: Credentials,
    *,
    name: str = "service",
    argv: Sequence[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> HttpProcess:
    port = free_port()
    env = {**service_env(redis_url, port, credentials), **(extra_env or {})}
    return HttpProcess(name, argv or tokenstore_command(), port, env, ready_path="/readyz")


# --- Redis -----------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(*extra_args: str) -> Iterator[RedisServer]:
    """A throw-away redis-server on a free loopback port (never 6379)."""
    with RedisServer(extra_args=extra_args) as server:
        yield server


def renice(pid: int, niceness: int) -> str:
    """Give a child process a scheduling priority; returns what was done, for the report."""
    if niceness == 0:
        return "default priority"
    try:
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError as exc:
        return f"default priority (renice {niceness} failed: {exc.strerror})"
    return f"nice {niceness}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc), [] if it is gone."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of a process and of all its live descendants (e.g. a supervisor's
    ``--workers``)."""
    return cpu_seconds(pid) + sum(tree_cpu_seconds(child) for child in children(pid))


def admin_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=60, decode_responses=True)


def info(client: redis.Redis, section: str) -> dict[str, Any]:
    return client.info(section)


def commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) since the last CONFIG RESETSTAT."""
    stats = info(client, "commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(value["calls"]), int(value["usec"]))
        for name, value in stats.items()
    }


def commandstats_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    out = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = before.get(name, (0, 0))
        if calls != calls0:
            out[name] = (calls - calls0, usec - usec0)
    return out


# --- statistics and printing -----------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """'median (min-max, n=N)' for a printed table."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{fmt.format(median(values))} ({fmt.format(low)}-{fmt.format(high)}, n={len(values)})"


def banner(title: str) -> None:
    print(f"\n== {title}", flush=True)


def say(text: str) -> None:
    print(text, flush=True)


def machine() -> str:
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.split()
        redis_version = next((w[2:] for w in version if w.startswith("v=")), "?")
        return f"{os.cpu_count()} cores, Redis {redis_version}, Python {sys.version.split()[0]}"
    return f"{os.cpu_count()} cores"
