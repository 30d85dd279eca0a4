"""Real, throw-away redis-server processes for the test suite.

Every server listens on 127.0.0.1 on a port chosen here, lives in its own temp dir and is
verified by pid before use, so the suite never talks to a Redis it did not start.
"""

from __future__ import annotations

import atexit
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import redis
from processes import Managed, terminate
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
HOST = "127.0.0.1"
CLUSTER_BUS_OFFSET = 10000
CLUSTER_SLOTS = 16384

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
PORT_ATTEMPTS = 5

# Candidates stay below the kernel's default ephemeral range (32768+), bus port included, so
# outgoing connections (ours, or the cluster bus's) rarely grab a port between probe and bind.
_PORT_LOW = 10000
_PORT_HIGH = 32768 - CLUSTER_BUS_OFFSET
# Private generator: a test that seeds the global `random` must not make port picks repeat.
_rng = random.Random()
# Servers still running; stopped at interpreter exit if a fixture's teardown never ran.
_live: set[RedisServer] = set()


class _PortInUse(Exception):
    """The chosen port was taken between free_port() and redis-server's bind()."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A loopback port nothing is bound to; with_bus also requires port+10000 (cluster bus)."""
    for _ in range(200):
        port = _rng.randrange(_PORT_LOW, _PORT_HIGH)
        if _bindable(port) and (not with_bus or _bindable(port + CLUSTER_BUS_OFFSET)):
            return port
    raise RuntimeError("no free loopback port found")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _client(port: int, timeout: float = 5.0) -> redis.Redis:
    # No client-side retries: the polling loops retry on their own deadline, and redis-py's
    # default backoff would stretch one failed probe to several seconds.
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


class RedisServer(Managed):
    """One standalone redis-server; start() picks the port, stop() removes every trace."""

    _with_bus = False

    def __init__(self, *, extra_args: Sequence[str] = ()) -> None:
        self.port = 0
        self._extra_args = list(extra_args)
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def log_path(self) -> Path | None:
        return None if self._dir is None else self._dir / "redis.log"

    def _args(self, port: int, log_path: Path) -> list[str]:
        assert self._dir is not None
        return [
            REDIS_SERVER,
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(self._dir),
            "--logfile", str(log_path),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--daemonize", "no",
            *self._extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"redis-server already running on port {self.port}")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once(free_port(with_bus=self._with_bus))
                return
            except _PortInUse:
                self.stop()
                if attempt == PORT_ATTEMPTS:
                    raise RuntimeError(
                        f"redis-server lost the port race {PORT_ATTEMPTS} times"
                    ) from None
            except BaseException:
                self.stop()
                raise

    def _start_once(self, port: int) -> None:
        self.port = port
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"redis-{port}-"))
        log_path = self._dir / "redis.log"
        # Early failures (bad config) go to stderr before --logfile applies: same file.
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            self._args(port, log_path),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _live.add(self)
        self._wait_ready(self._proc, log_path)

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = _tail(log_path)
                if "Address already in use" in log:
                    raise _PortInUse
                raise RuntimeError(
                    f"redis-server on port {self.port} exited with {proc.returncode}; "
                    f"log tail:\n{log}"
                )
            try:
                with _client(self.port, timeout=0.5) as client:
                    client.ping()
                    # Whoever answers must be our child, not a server that won the port race.
                    if client.info("server")["process_id"] == proc.pid:
                        return
            except redis.RedisError as exc:
                last_error = exc
            time.sleep(0.02)
        raise RuntimeError(
            f"redis-server on port {self.port} not answering PING after {STARTUP_TIMEOUT}s "
            f"(last error: {last_error!r}); log tail:\n{_tail(log_path)}"
        )

    def kill(self) -> None:
        """SIGKILL, as a crash: its directory (AOF, RDB) stays for ``restart``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Start again after ``kill``, on the same port and directory (its AOF is reloaded)."""
        if self._proc is not None or self._dir is None:
            raise RuntimeError("restart() follows kill()")
        self._start_once(self.port)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, STOP_TIMEOUT)
        _live.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def flush(self) -> None:
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        with _client(self.port) as client:
            client.flushall()


class _ClusterNode(RedisServer):
    _with_bus = True

    def _args(self, port: int, log_path: Path) -> list[str]:
        return [
            *super()._args(port, log_path),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
        ]  # fmt: skip


class RedisCluster(Managed):
    """Three masters, no replicas, every slot assigned; url names the first node as seed."""

    def __init__(self, *, extra_args: Sequence[str] = ()) -> None:
        self._nodes = [_ClusterNode(extra_args=extra_args) for _ in range(3)]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self._nodes]

    @property
    def pids(self) -> list[int | None]:
        return [node.pid for node in self._nodes]

    @property
    def url(self) -> str:
        return self._nodes[0].url

    def start(self) -> None:
        if any(pid is not None for pid in self.pids):
            raise RuntimeError(f"cluster already running on ports {self.ports}")
        try:
            # One after another: each running node holds its port and bus port, so the
            # next free_port() cannot hand them out again.
            for node in self._nodes:
                node.start()
            self._create()
            self._wait_cluster_ok()
        except BaseException:
            self.stop()
            raise

    def _logs(self) -> str:
        return "\n".join(
            f"--- node {node.port} log tail:\n{_tail(node.log_path)}"
            for node in self._nodes
            if node.log_path is not None
        )

    def _create(self) -> None:
        cmd = [
            REDIS_CLI,
            "--cluster", "create",
            *(f"{HOST}:{port}" for port in self.ports),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT * 2,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"redis-cli --cluster create timed out\n{self._logs()}") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self._logs()}"
            )

    def _wait_cluster_ok(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last: object = None
        while time.monotonic() < deadline:
            try:
                infos = [self._cluster_info(port) for port in self.ports]
            except redis.RedisError as exc:
                last = exc
            else:
                last = infos
                if all(self._healthy(info) for info in infos):
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"cluster on ports {self.ports} not ok after {STARTUP_TIMEOUT}s "
            f"(last CLUSTER INFO: {last!r}):\n{self._logs()}"
        )

    @staticmethod
    def _cluster_info(port: int) -> dict[str, Any]:
        with _client(port) as client:
            return dict(client.cluster("info"))

    def _healthy(self, info: dict[str, Any]) -> bool:
        return (
            info.get("cluster_state") == "ok"
            and int(info.get("cluster_slots_assigned", 0)) == CLUSTER_SLOTS
            and int(info.get("cluster_known_nodes", 0)) == len(self._nodes)
        )

    def stop(self) -> None:
        for node in self._nodes:
            node.stop()

    def flush(self) -> None:
        # With zero replicas every node is a master.
        for node in self._nodes:
            node.flush()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        server.stop()
