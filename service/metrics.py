"""Prometheus metrics of the service, and their text for ``GET /metrics``.

Recording is plain arithmetic on ints and floats: a request, a Redis round trip or an answer
costs a few dict and list operations, where prometheus_client's objects take a lock per value
(and, with several processes, write to a memory-mapped file). The Prometheus text is built from
those numbers at scrape time, with prometheus_client's custom-collector families.

One ``Metrics`` per app (apps built side by side in tests do not share counts).

With several worker processes the supervisor points ``TOKENSTORE_METRICS_DIR`` at a fresh
directory. Every worker writes a snapshot of its numbers there (``metrics_<pid>.json``) every
second and when it stops, and whichever worker answers a scrape adds its own live numbers to
every other worker's latest snapshot: counters and histograms summed over live and exited
workers, the in-flight and feed-subscriber gauges over live ones only (the supervisor zeroes an
exited worker's, see ``mark_process_dead``). A scrape may therefore miss up to about a second
of the other workers' requests (the next one has them), and a killed worker's last second is
lost.

Label values are route names, statuses, store operation names, fixed kinds and webhook ids
from the webhooks file: never a path, key, URL, user or token id, or token.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from service.observer import RevocationKind

# Set by the supervisor of several workers (service.workers). Not prometheus_client's
# PROMETHEUS_MULTIPROC_DIR: its multiprocess mode is what this module replaces.
METRICS_DIR_ENV = "TOKENSTORE_METRICS_DIR"

HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

Labels = tuple[str, ...]


class Family(NamedTuple):
    name: str
    help: str
    labels: Labels
    buckets: tuple[float, ...] = ()  # a histogram's upper bounds, +Inf implied


HTTP_REQUESTS = Family("tokenstore_http_requests", "HTTP requests answered.", ("route", "status"))
HTTP_SECONDS = Family(
    "tokenstore_http_request_duration_seconds",
    "Time from request received to response ready.",
    ("route", "status"),
    HTTP_BUCKETS,
)
IN_FLIGHT = Family("tokenstore_http_requests_in_flight", "Requests being handled.", ())
FEED_SUBSCRIBERS = Family("tokenstore_feed_subscribers", "Open revocation feed streams.", ())
REDIS_SECONDS = Family(
    "tokenstore_redis_command_duration_seconds",
    "Redis round trips (a pipeline or script is one), by store operation.",
    ("op",),
    REDIS_BUCKETS,
)
REDIS_ERRORS = Family("tokenstore_redis_errors", "Failed Redis round trips.", ("op", "error"))
ISSUED = Family("tokenstore_tokens_issued", "Tokens minted or registered.", ("origin",))
REVOCATIONS = Family("tokenstore_revocations", "Revocations that took effect.", ("kind",))
INTROSPECTIONS = Family("tokenstore_introspections", "Introspection answers.", ("result",))
WEBHOOK_DELIVERIES = Family(
    "tokenstore_webhook_deliveries",
    "Webhook delivery outcomes: delivered, retried (a failed attempt), dead_lettered, redelivered.",
    ("webhook", "outcome"),
)
WEBHOOK_BACKLOG = Family(
    "tokenstore_webhook_backlog_events",
    "Events of the stream a webhook has not had a 2xx for yet (unread and pending).",
    ("webhook",),
)
WEBHOOK_LEASE = Family(
    "tokenstore_webhook_lease_held",
    "1 where this process (or another worker of its pod) holds the webhook's delivery lease.",
    ("webhook",),
)
HISTOGRAMS = {f.name: f for f in (HTTP_SECONDS, REDIS_SECONDS)}

_ORIGIN = ("minted", "registered")  # by `registered`


class Histogram:
    """Observation counts per bucket (the last is +Inf), and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as prometheus_client's `value <= bound`.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum

    def copy(self) -> Histogram:
        copy = Histogram(self.bounds)
        copy.add(self)
        return copy


class Tally:
    """A process's numbers by family name and label values: what is snapshot and summed."""

    def __init__(self, in_flight: int = 0, feed_subscribers: int = 0) -> None:
        self.in_flight = in_flight
        self.feed_subscribers = feed_subscribers
        self.counters: dict[str, dict[Labels, int]] = {}
        self.histograms: dict[str, dict[Labels, Histogram]] = {}
        # Gauges every process reports alike (a webhook's backlog): the largest is kept.
        self.highest: dict[str, dict[Labels, float]] = {}

    def add(self, other: Tally) -> None:
        self.in_flight += other.in_flight
        self.feed_subscribers += other.feed_subscribers
        for name, counts in other.counters.items():
            mine = self.counters.setdefault(name, {})
            for labels, n in counts.items():
                mine[labels] = mine.get(labels, 0) + n
        for name, histograms in other.histograms.items():
            ours = self.histograms.setdefault(name, {})
            for labels, histogram in histograms.items():
                if labels in ours:
                    ours[labels].add(histogram)
                else:
                    ours[labels] = histogram.copy()
        for name, values in other.highest.items():
            kept = self.highest.setdefault(name, {})
            for labels, value in values.items():
                kept[labels] = max(kept.get(labels, value), value)

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "in_flight": self.in_flight,
                "feed_subscribers": self.feed_subscribers,
                "counters": {name: list(c.items()) for name, c in self.counters.items()},
                "histograms": {
                    name: [(labels, h.counts, h.sum) for labels, h in hs.items()]
                    for name, hs in self.histograms.items()
                },
                "highest": {name: list(g.items()) for name, g in self.highest.items()},
            }
        )

    @classmethod
    def loads(cls, data: bytes) -> Tally:
        raw = orjson.loads(data)
        tally = cls(raw["in_flight"], raw.get("feed_subscribers", 0))
        for name, items in raw["counters"].items():
            tally.counters[name] = {tuple(labels): n for labels, n in items}
        for name, items in raw.get("highest", {}).items():
            tally.highest[name] = {tuple(labels): value for labels, value in items}
        for name, items in raw["histograms"].items():
            histograms = tally.histograms[name] = {}
            for labels, counts, total in items:
                histogram = histograms[tuple(labels)] = Histogram(HISTOGRAMS[name].buckets)
                histogram.counts, histogram.sum = counts, total
        return tally

    def families(self) -> Iterator[Metric]:
        """As prometheus_client's own Counter, Histogram and Gauge objects would show them."""
        http = self.histograms.get(HTTP_SECONDS.name, {})
        requests = CounterMetricFamily(
            HTTP_REQUESTS.name, HTTP_REQUESTS.help, labels=HTTP_REQUESTS.labels
        )
        for labels, histogram in http.items():
            requests.add_metric(labels, sum(histogram.counts))
        yield requests
        yield _histogram_family(HTTP_SECONDS, http)
        yield GaugeMetricFamily(IN_FLIGHT.name, IN_FLIGHT.help, value=self.in_flight)
        yield GaugeMetricFamily(
            FEED_SUBSCRIBERS.name, FEED_SUBSCRIBERS.help, value=self.feed_subscribers
        )
        yield _histogram_family(REDIS_SECONDS, self.histograms.get(REDIS_SECONDS.name, {}))
        for family in (REDIS_ERRORS, ISSUED, REVOCATIONS, INTROSPECTIONS, WEBHOOK_DELIVERIES):
            counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
            for labels, n in self.counters.get(family.name, {}).items():
                counter.add_metric(labels, n)
            yield counter
        for family in (WEBHOOK_BACKLOG, WEBHOOK_LEASE):
            gauge = GaugeMetricFamily(family.name, family.help, labels=family.labels)
            for labels, value in self.highest.get(family.name, {}).items():
                gauge.add_metric(labels, value)
            yield gauge


def _histogram_family(family: Family, histograms: dict[Labels, Histogram]) -> Metric:
    result = HistogramMetricFamily(family.name, family.help, labels=family.labels)
    les = [floatToGoString(bound) for bound in (*family.buckets, float("inf"))]
    for labels, histogram in histograms.items():
        cumulative, buckets = 0, []
        for le, n in zip(les, histogram.counts, strict=True):
            cumulative += n
            buckets.append((le, cumulative))
        result.add_metric(labels, buckets, histogram.sum)
    return result


class Metrics:
    """The service's metrics; also the ``Observer`` of its store and TokenService."""

    def __init__(self, metrics_dir: str | None = None, pid: int | None = None) -> None:
        """``metrics_dir``: where workers' snapshots are; ``pid`` names this one's file."""
        self.metrics_dir = metrics_dir
        self.pid = os.getpid() if pid is None else pid
        self.in_flight = 0
        self.feed_subscribers = 0  # changed by the feed route (service.api.feed)
        self._http: dict[tuple[str, int], Histogram] = {}  # (route, status): the count is there
        self._redis: dict[str, Histogram] = {}
        self._redis_errors: Counter[Labels] = Counter()
        self._issued: Counter[str] = Counter()
        self._revocations: Counter[str] = Counter()
        self._answers = [0, 0]  # by `active`; both always shown, as before
        self._webhook_outcomes: Counter[Labels] = Counter()
        self._webhook_backlog: dict[Labels, float] = {}
        self._webhook_lease: dict[Labels, float] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    @classmethod
    def from_env(cls) -> Metrics:
        return cls(os.environ.get(METRICS_DIR_ENV) or None)

    # --- the request middleware (service.api.observe) ---------------------------------------

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, route: str, status: int, seconds: float) -> None:
        self.in_flight -= 1
        histogram = self._http.get((route, status))
        if histogram is None:
            histogram = self._http[route, status] = Histogram(HTTP_BUCKETS)
        histogram.observe(seconds)

    # --- service.observer.Observer ----------------------------------------------------------

    def redis_call(self, op: str, seconds: float, error: str | None) -> None:
        histogram = self._redis.get(op)
        if histogram is None:
            histogram = self._redis[op] = Histogram(REDIS_BUCKETS)
        histogram.observe(seconds)
        if error is not None:
            self._redis_errors[op, error] += 1

    def issued(self, registered: bool) -> None:
        self._issued[_ORIGIN[registered]] += 1

    def introspected(self, active: bool) -> None:
        self._answers[active] += 1

    def revoked(self, kind: RevocationKind) -> None:
        self._revocations[kind] += 1

    # --- webhook workers (service.webhooks) -------------------------------------------------

    def webhook_delivery(self, webhook_id: str, outcome: str) -> None:
        self._webhook_outcomes[webhook_id, outcome] += 1

    def webhook_backlog(self, webhook_id: str, events: int) -> None:
        self._webhook_backlog[(webhook_id,)] = float(events)

    def webhook_lease(self, webhook_id: str, *, held: bool) -> None:
        self._webhook_lease[(webhook_id,)] = float(held)

    # --- snapshots and exposition -----------------------------------------------------------

    def tally(self) -> Tally:
        """A copy of this process's numbers."""
        tally = Tally(self.in_flight, self.feed_subscribers)
        tally.histograms[HTTP_SECONDS.name] = {
            (route, str(status)): h.copy() for (route, status), h in self._http.items()
        }
        tally.histograms[REDIS_SECONDS.name] = {(op,): h.copy() for op, h in self._redis.items()}
        tally.counters[REDIS_ERRORS.name] = dict(self._redis_errors)
        tally.counters[ISSUED.name] = {(origin,): n for origin, n in self._issued.items()}
        tally.counters[REVOCATIONS.name] = {(kind,): n for kind, n in self._revocations.items()}
        tally.counters[INTROSPECTIONS.name] = {
            ("active",): self._answers[True],
            ("inactive",): self._answers[False],
        }
        tally.counters[WEBHOOK_DELIVERIES.name] = dict(self._webhook_outcomes)
        tally.highest[WEBHOOK_BACKLOG.name] = dict(self._webhook_backlog)
        tally.highest[WEBHOOK_LEASE.name] = dict(self._webhook_lease)
        return tally

    def write_snapshot(self) -> None:
        """This process's numbers to its file, for the other workers' scrapes."""
        if self.metrics_dir is not None:
            _write(os.path.join(self.metrics_dir, _snapshot_name(self.pid)), self.tally())

    def collect(self) -> Iterator[Metric]:
        """This process's numbers plus every other worker's latest snapshot."""
        return self._with_others(self.tally()).families()

    def _with_others(self, total: Tally) -> Tally:
        if self.metrics_dir is not None:
            own = _snapshot_name(self.pid)
            for name in os.listdir(self.metrics_dir):
                if name.startswith("metrics_") and name.endswith(".json") and name != own:
                    total.add(_read(os.path.join(self.metrics_dir, name)))
        return total

    def render(self, extra: Iterable[Metric] = ()) -> bytes:
        """The text format of every process's samples, followed by ``extra`` families."""
        return generate_latest(self.registry) + generate_latest(_Families(list(extra)))

    def text(self, own: Tally, extra: Iterable[Metric] = ()) -> bytes:
        """``render`` from ``own``, a ``tally()`` taken on the event loop: the rest (reading
        the other workers' snapshots, summing, formatting) touches nothing the loop changes,
        so it may run in another thread."""
        total = _Families(list(self._with_others(own).families()))
        return generate_latest(total) + generate_latest(_Families(list(extra)))


def _snapshot_name(pid: int) -> str:
    return f"metrics_{pid}.json"


def mark_process_dead(pid: int, metrics_dir: str) -> None:
    """An exited worker's requests are no longer in flight (nor its feed streams open); its
    counts stay in the sums."""
    path = os.path.join(metrics_dir, _snapshot_name(pid))
    try:
        tally = _read(path)
    except FileNotFoundError:
        return  # it never wrote one
    tally.in_flight = tally.feed_subscribers = 0
    _write(path, tally)


def _read(path: str) -> Tally:
    with open(path, "rb") as file:
        return Tally.loads(file.read())


def _write(path: str, tally: Tally) -> None:
    # Readers see the previous snapshot or this one, never part of one.
    temporary = path.removesuffix(".json") + ".tmp"
    with open(temporary, "wb") as file:
        file.write(tally.dumps())
    os.replace(temporary, path)


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
