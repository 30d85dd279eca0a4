"""``GET /metrics`` on the service's port: Prometheus text for an API client with ``admin``
(route name ``ops.metrics``). Prometheus scrapes the open metrics port instead
(service.metrics_server); both build the same text with ``exposition``.

Besides the samples of every worker process (service.metrics), each scrape reads the state of
the revocation event stream from Redis:

- ``tokenstore_event_stream_length``: events kept (the stream is trimmed to the longest token
  lifetime);
- ``tokenstore_event_stream_lag_seconds``: now minus the time of the newest event, i.e. how far
  behind the present the stream's head is. A consumer that has read the newest event is this
  far behind; after a revocation it is near zero, and it grows while nothing is revoked.

Both are left out of a scrape while Redis cannot be reached.

Only taking this process's numbers and reading the stream run on the event loop; reading the
other workers' snapshots, summing and formatting (tens of milliseconds with several workers)
run in a thread.

With several workers, ``snapshots`` (an app cleanup context) writes this worker's numbers for
the others' scrapes: at start, every ``SNAPSHOT_INTERVAL`` seconds, and at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from service.api.responses import STORE
from service.api.routing import Dialect, Route
from service.auth import Rule
from service.clients import Permission
from service.clock import now_ms
from service.errors import Unavailable
from service.metrics import Metrics, Tally
from service.store import TokenStore

METRICS = web.AppKey("metrics", Metrics)
SNAPSHOT_INTERVAL = 1.0  # how stale other workers' numbers may be in a scrape

log = logging.getLogger(__name__)


async def snapshots(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS]
    if metrics.metrics_dir is None:
        yield
        return
    metrics.write_snapshot()  # before serving: a scrape of another worker sees this one at once
    task = asyncio.create_task(_write_snapshots(metrics))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    metrics.write_snapshot()  # requests are over: the last numbers, in flight 0


async def _write_snapshots(metrics: Metrics) -> None:
    failing = False
    while True:
        await asyncio.sleep(SNAPSHOT_INTERVAL)
        try:
            metrics.write_snapshot()  # a few small files' worth: not worth a thread
        except OSError:
            if not failing:
                log.exception("cannot write the metrics snapshot; other workers' scrapes lag")
            failing = True
        else:
            failing = False


async def event_stream_families(store: TokenStore) -> list[Metric]:
    try:
        state = await store.event_stream()
        length = state.length if state else 0
        newest_ms = int(state.last_id.split("-")[0]) if state and state.length else None
    except Unavailable:
        return []
    families: list[Metric] = [
        GaugeMetricFamily(
            "tokenstore_event_stream_length", "Revocation events kept in Redis.", value=length
        )
    ]
    if newest_ms is not None:
        lag = max(0, now_ms() - newest_ms) / 1000
        families.append(
            GaugeMetricFamily(
                "tokenstore_event_stream_lag_seconds",
                "Seconds since the newest revocation event was appended.",
                value=lag,
            )
        )
    return families


async def exposition(metrics: Metrics, store: TokenStore) -> tuple[Tally, list[Metric]]:
    """What a scrape needs from the event loop: this process's numbers (which the loop alone
    changes) and the stream gauges; ``Metrics.text`` makes the rest in any thread."""
    return metrics.tally(), await event_stream_families(store)


async def metrics(request: web.Request) -> web.Response:
    own, extra = await exposition(request.app[METRICS], request.app[STORE])
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(None, request.app[METRICS].text, own, extra)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


DIALECT = Dialect("ops", (
    Route("GET", "/metrics", metrics, name="ops.metrics", rule=Rule(Permission.ADMIN), openapi={
        "summary": "Prometheus metrics, summed over every worker process (Prometheus scrapes "
                   "the open metrics port instead: TOKENSTORE_METRICS_PORT)",
        "responses": {"200": {
            "description": "Prometheus text format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}),
))  # fmt: skip
