"""``tokenstore serve --workers N``: N serving processes on one port, under a supervisor.

Each worker is a fresh interpreter (multiprocessing "spawn") running ``service.runner`` on a
socket of its own with SO_REUSEPORT: the kernel spreads new connections over them. The
supervisor serves nothing. It

- gives the workers a fresh metrics directory (``TOKENSTORE_METRICS_DIR``), so that each
  scrape adds up every worker's numbers, and removes it when all are gone;
- forwards SIGTERM and SIGINT to the workers, which drain as one process would;
- restarts nothing: if a worker exits on its own, it says so, stops the others and exits 1, for
  the process manager (Kubernetes, systemd) to restart the whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from service import runner
from service.app import create_app
from service.logs import configure
from service.metrics import METRICS_DIR_ENV, mark_process_dead
from service.settings import Settings

log = logging.getLogger("tokenstore.workers")
# Past the workers' own drain budget, before they are killed.
STOP_GRACE = 10.0


def resolve(workers: int) -> int:
    """0 means one per CPU this process may run on."""
    if workers:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def supervise(settings: Settings, count: int) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="tokenstore-metrics-")
    # Inherited by the workers, which read it when they build their app.
    os.environ[METRICS_DIR_ENV] = metrics_dir
    try:
        return _Supervisor(settings, count, metrics_dir).run()
    finally:
        del os.environ[METRICS_DIR_ENV]
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_main(settings: Settings) -> None:
    configure(settings.log_level)
    parent = multiprocessing.parent_process()
    sentinel = None if parent is None else parent.sentinel
    app = create_app(settings)
    sys.exit(runner.run(app, settings, reuse_port=True, parent_sentinel=sentinel))


class _Supervisor:
    def __init__(self, settings: Settings, count: int, metrics_dir: str) -> None:
        self.settings = settings
        self.count = count
        self.metrics_dir = metrics_dir
        self.workers: dict[int, BaseProcess] = {}  # by sentinel
        self.deadline: float | None = None  # set once stopping
        self.failed = False

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._start()
            while self.workers:
                self._reap(wait(list(self.workers), timeout=1.0))
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self._kill_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
        return 1 if self.failed else 0

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        for number in range(self.count):
            if self.deadline is not None:
                break
            process = context.Process(
                target=worker_main, args=(self.settings,), name=f"tokenstore-worker-{number}"
            )
            process.start()
            self.workers[process.sentinel] = process
        pids = [p.pid for p in self.workers.values()]
        log.info("workers started", extra={"worker_pids": pids, "metrics_dir": self.metrics_dir})

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("stopping workers", extra={"signal": signal.Signals(signum).name})
        self._stop()

    def _stop(self) -> None:
        if self.deadline is not None:
            return  # once: a second SIGTERM could land after a worker's handlers are gone
        s = self.settings
        self.deadline = time.monotonic() + s.shutdown_delay + s.shutdown_timeout + STOP_GRACE
        for process in self.workers.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains

    def _reap(self, ready: Sequence[object]) -> None:
        for sentinel in ready:
            assert isinstance(sentinel, int)
            process = self.workers.pop(sentinel)
            assert process.pid is not None  # started
            process.join()
            # Its counts stay (they are totals); its requests in flight are gone.
            mark_process_dead(process.pid, self.metrics_dir)
            if self.deadline is None or process.exitcode != 0:
                self.failed = True
                fields = {"worker_pid": process.pid, "exitcode": process.exitcode}
                log.error("worker exited", extra=fields | {"stopping": self.deadline is not None})
            self._stop()

    def _kill_all(self) -> None:
        for process in self.workers.values():
            if process.is_alive():
                log.error(
                    "worker did not stop in time; killing it", extra={"worker_pid": process.pid}
                )
                process.kill()
                self.failed = True
