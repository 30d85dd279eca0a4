"""A standalone redis-server that faults on demand: killed and restarted on its own port and
data directory (SIGKILL, then a new process), or frozen (SIGSTOP) and thawed (SIGCONT).

Used by the fault tests and by ``bench/soak.py``. Persistence is on (an AOF fsynced on every
write) unless the caller passes other settings, so that what a restart loses is Redis's
durability setting, never the service's doing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from redis_servers import RedisServer

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


class FaultyRedis(RedisServer):
    def __init__(self, *, extra_args: Sequence[str] = DURABLE) -> None:
        super().__init__(extra_args=extra_args)
        self._stopped = False

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        return self._proc

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; its clients see their connections reset."""
        proc = self._running()
        proc.kill()
        proc.wait()
        self._stopped = False

    def restart(self) -> None:
        """A new redis-server on the same port and directory (it reloads the AOF, if any);
        returns once it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is still running")
        assert self._dir is not None and self._log is not None
        log_path = self._dir / "redis.log"
        self._proc = subprocess.Popen(
            self._args(self.port, log_path),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(self._proc, log_path)

    def pause(self) -> None:
        """SIGSTOP: connections stay open (new ones even complete their handshake in the
        kernel) but nothing is answered, as with a host that hangs."""
        os.kill(self._running().pid, signal.SIGSTOP)
        self._stopped = True

    def resume(self) -> None:
        os.kill(self._running().pid, signal.SIGCONT)
        self._stopped = False

    def stop(self) -> None:
        if self._stopped and self._proc is not None:
            self.resume()  # a stopped process would ignore SIGTERM until killed
        super().stop()
