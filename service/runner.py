"""One serving process: listen, run until SIGTERM or SIGINT, then shut down gracefully.
Connections are served by ``service.protocol`` (client timeouts, the connection limit).

Shutdown, in order:

1. ``/readyz`` answers 503 at once, and every response from then on closes its connection.
2. ``TOKENSTORE_SHUTDOWN_DELAY`` seconds (default 0) with the listener still open, for load
   balancers that learn of readiness by polling it.
3. The listener closes, idle keep-alive connections close, and requests in flight get up to
   ``TOKENSTORE_SHUTDOWN_TIMEOUT`` seconds to finish; any left then are cancelled.
4. The app sweep stops and the Redis pool closes; the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from service.api.metrics import METRICS
from service.api.responses import STORE
from service.lifecycle import LIFECYCLE
from service.metrics_server import MetricsServer
from service.protocol import ClientLimits, HardenedRunner
from service.settings import Settings

log = logging.getLogger("tokenstore.runner")


def run(
    app: web.Application,
    settings: Settings,
    *,
    reuse_port: bool = False,
    parent_sentinel: int | None = None,
    on_listening: Callable[[], object] | None = None,
) -> int:
    """Serve ``app`` until told to stop; a worker also stops on EOF of ``parent_sentinel``.
    ``on_listening`` runs once the port is bound (never if binding fails)."""
    return _run_loop(
        serve(
            app,
            settings,
            reuse_port=reuse_port,
            parent_sentinel=parent_sentinel,
            on_listening=on_listening,
        )
    )


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main)
    return uvloop.run(main)


async def serve(
    app: web.Application,
    settings: Settings,
    *,
    reuse_port: bool,
    parent_sentinel: int | None,
    on_listening: Callable[[], object] | None = None,
) -> int:
    stop = _stop_event(parent_sentinel)
    runner = HardenedRunner(
        app,
        limits=ClientLimits(settings.header_timeout, settings.max_connections),
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        # After an answer, an unread body is read and dropped (so the client sees the answer
        # before the connection closes) for no longer than a body may take.
        lingering_time=settings.body_timeout,
    )
    await runner.setup()
    address = {"host": settings.host, "port": settings.port}
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen: %s", exc, extra=address)
            return 1
        try:
            metrics_server = _metrics_server(app, settings, reuse_port)
        except OSError as exc:
            log.error("cannot listen for metrics: %s", exc, extra={"port": settings.metrics_port})
            return 1
        log.info("listening", extra=address)
        if on_listening is not None:
            on_listening()
        _check_file_limit(settings)
        try:
            await stop.wait()
        finally:
            if metrics_server is not None:
                # In a thread: a scrape in progress waits for this loop.
                await asyncio.to_thread(metrics_server.stop)
        app[LIFECYCLE].drain()
        log.info("shutdown: not ready", extra={"delay_s": settings.shutdown_delay})
        await asyncio.sleep(settings.shutdown_delay)
        log.info("shutdown: closing the listener", extra={"drain_s": settings.shutdown_timeout})
    finally:
        await runner.cleanup()
    log.info("shutdown: done")
    return 0


def _metrics_server(
    app: web.Application, settings: Settings, reuse_port: bool
) -> MetricsServer | None:
    """The metrics port's server, started; None without a metrics port."""
    if not settings.metrics_port:
        return None
    server = MetricsServer(
        settings.host,
        settings.metrics_port,
        app[METRICS],
        app[STORE],
        asyncio.get_running_loop(),
        reuse_port=reuse_port,
        scrape_timeout=settings.redis_timeout + 1,
    )
    server.start()
    log.info("metrics listening", extra={"host": settings.host, "port": settings.metrics_port})
    return server


def _check_file_limit(settings: Settings) -> None:
    """Make room for the connection limit in the open-file limit, raising the soft limit up to
    the hard one if need be (many systems start processes at 1024); warn if it cannot be
    reached, since accept() would then fail first (EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Besides client connections: the Redis pool (per node on a Cluster), logs, the listener.
    needed = settings.max_connections + settings.redis_pool_size + 64
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    except (ValueError, OSError):
        raised = soft
    if raised < needed:
        log.warning(
            "the open-file limit is below what the connection limit needs",
            extra={"nofile": raised, "needed": needed, "max_connections": settings.max_connections},
        )


def _stop_event(parent_sentinel: int | None) -> asyncio.Event:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent_sentinel is not None:
        # Readable once the supervisor is gone (even SIGKILLed): never serve as an orphan.
        def parent_gone() -> None:
            loop.remove_reader(parent_sentinel)
            log.warning("supervisor gone; shutting down")
            stop.set()

        loop.add_reader(parent_sentinel, parent_gone)
    return stop
