"""Prometheus metrics of the service, and their text for ``GET /metrics``.

One ``Metrics`` per app, on a registry of its own (apps built side by side in tests do not
share counts). With several worker processes, prometheus_client's multiprocess mode adds them
up: the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before it starts
the workers, every process writes its samples to files there, and whichever worker answers a
scrape reads them all (counters and histograms summed over live and dead workers, the
in-flight gauge over live ones only).

Label values are route names, statuses, store operation names and fixed kinds: never a path,
key, id or token.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from service.observer import RevocationKind

# prometheus_client reads this variable itself, at import, to choose where samples live; it is
# read here only to expose them the same way.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# No `*_created` series: multiprocess mode has none, and one worker should look like many.
disable_created_metrics()

HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class Metrics:
    """The service's metrics; also the ``Observer`` of its store and TokenService."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "tokenstore_http_requests", "HTTP requests answered.", ["route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "tokenstore_http_request_duration_seconds",
            "Time from request received to response ready.",
            ["route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "tokenstore_http_requests_in_flight",
            "Requests being handled.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.redis_seconds = Histogram(
            "tokenstore_redis_command_duration_seconds",
            "Redis round trips (a pipeline or script is one), by store operation.",
            ["op"],
            buckets=REDIS_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "tokenstore_redis_errors", "Failed Redis round trips.", ["op", "error"], registry=r
        )
        self.tokens_issued = Counter(
            "tokenstore_tokens_issued", "Tokens minted or registered.", ["origin"], registry=r
        )
        self.revocations = Counter(
            "tokenstore_revocations", "Revocations that took effect.", ["kind"], registry=r
        )
        self.introspections = Counter(
            "tokenstore_introspections", "Introspection answers.", ["result"], registry=r
        )
        # Label lookups cost a lock and a dict each: children are kept for the hot path.
        self._http: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._redis: dict[str, Histogram] = {}
        self._answers = {
            True: self.introspections.labels("active"),
            False: self.introspections.labels("inactive"),
        }

    @classmethod
    def from_env(cls) -> Metrics:
        return cls(os.environ.get(MULTIPROC_ENV) or None)

    def request(self, route: str, status: int, seconds: float) -> None:
        children = self._http.get((route, status))
        if children is None:
            labels = (route, str(status))
            children = self._http[route, status] = (
                self.http_requests.labels(*labels),
                self.http_seconds.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)

    # --- service.observer.Observer ----------------------------------------------------------

    def redis_call(self, op: str, seconds: float, error: str | None) -> None:
        histogram = self._redis.get(op)
        if histogram is None:
            histogram = self._redis[op] = self.redis_seconds.labels(op)
        histogram.observe(seconds)
        if error is not None:
            self.redis_errors.labels(op, error).inc()

    def issued(self, registered: bool) -> None:
        self.tokens_issued.labels("registered" if registered else "minted").inc()

    def introspected(self, active: bool) -> None:
        self._answers[active].inc()

    def revoked(self, kind: RevocationKind) -> None:
        self.revocations.labels(kind).inc()

    # --- exposition -------------------------------------------------------------------------

    def render(self, extra: Iterable[Metric] = ()) -> bytes:
        """The text format of every process's samples, followed by ``extra`` families."""
        if self.multiprocess_dir is None:
            own = generate_latest(self.registry)
        else:
            own = generate_latest(MultiProcessCollector(None, self.multiprocess_dir))
        return own + generate_latest(_Families(list(extra)))
