"""What every throw-away server of the tests and benchmarks shares: stop it whatever happens."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Any, Self

STOP_TIMEOUT = 5.0


def terminate(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; always reaped."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Managed:
    """A resource used as a context manager: started on entry, stopped on exit, and stopped
    too if starting it fails half-way (so no process outlives a failed fixture)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
