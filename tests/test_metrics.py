"""/metrics in one process, on every backend: what is counted, and what never appears."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import prometheus_client
import pytest
from helpers import ADMIN_HEADERS, Client, introspect, issue
from prometheus_client.parser import text_string_to_metric_families
from redis_servers import free_port

from service.app import create_app
from service.metrics import (
    FEED_SUBSCRIBERS,
    HTTP_BUCKETS,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    IN_FLIGHT,
    INTROSPECTIONS,
    ISSUED,
    METRICS_DIR_ENV,
    REDIS_BUCKETS,
    REDIS_ERRORS,
    REDIS_SECONDS,
    REVOCATIONS,
    WEBHOOK_BACKLOG,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LEASE,
    Metrics,
    Tally,
    mark_process_dead,
)
from service.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: Client) -> tuple[str, Samples]:
    """/metrics on the service's port: an admin's (Prometheus scrapes the metrics port)."""
    async with (
        aiohttp.ClientSession(headers=ADMIN_HEADERS) as session,
        session.get(client.make_url("/metrics")) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counts_requests_tokens_revocations_and_introspections(client: Client) -> None:
    alice = await issue(client, "alice", "web")
    await issue(client, "bob", "web", token="external-token-value-1")
    await introspect(client, alice["token"])
    await introspect(client, "not-a-token")
    await client.delete(f"/v1/tokens/{alice['id']}")
    await client.delete("/v1/users/bob/tokens?app_id=web")
    await client.delete("/v1/users/nobody/tokens")  # nothing to revoke: not counted
    await client.delete("/v1/apps/web/tokens")
    await client.get("/no/such/route")
    _, samples = await scrape(client)

    assert value(samples, "tokenstore_http_requests_total", route="v1.issue", status="201") == 2
    assert value(samples, "tokenstore_http_requests_total", route="unmatched", status="404") == 1
    count = "tokenstore_http_request_duration_seconds_count"
    assert value(samples, count, route="v1.introspect", status="200") == 2
    assert value(samples, "tokenstore_tokens_issued_total", origin="minted") == 1
    assert value(samples, "tokenstore_tokens_issued_total", origin="registered") == 1
    assert value(samples, "tokenstore_introspections_total", result="active") == 1
    assert value(samples, "tokenstore_introspections_total", result="inactive") == 1
    for kind in ("token", "user_app", "app"):
        assert value(samples, "tokenstore_revocations_total", kind=kind) == 1, kind
    assert value(samples, "tokenstore_revocations_total", kind="user") == 0
    assert value(samples, "tokenstore_http_requests_in_flight") == 1  # this scrape
    redis_count = "tokenstore_redis_command_duration_seconds_count"
    for op in ("issue", "read_batch", "revoke_one", "revoke_user", "revoke_app", "append_event"):
        assert value(samples, redis_count, op=op) >= 1, op
    assert value(samples, "tokenstore_event_stream_length") == 3
    assert 0 <= value(samples, "tokenstore_event_stream_lag_seconds") < 5


async def test_open_feed_streams_are_counted_until_they_close(
    aiohttp_client: Any, settings: Settings
) -> None:
    client: Client = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    streams = [await client.get("/v1/events") for _ in range(2)]
    for stream in streams:
        assert stream.status == 200
    _, samples = await scrape(client)
    assert value(samples, FEED_SUBSCRIBERS.name) == 2
    for stream in streams:
        stream.close()
    for _ in range(100):  # the handlers notice the closed connections on their next write
        _, samples = await scrape(client)
        if value(samples, FEED_SUBSCRIBERS.name) == 0:
            break
        await asyncio.sleep(0.05)
    assert value(samples, FEED_SUBSCRIBERS.name) == 0


async def test_per_user_limit_evictions_are_counted(
    aiohttp_client: Any, settings: Settings
) -> None:
    app = create_app(replace(settings, max_tokens_per_user=1))
    client: Client = await aiohttp_client(app, headers=ADMIN_HEADERS)
    await issue(client, "carol")
    await issue(client, "carol")
    _, samples = await scrape(client)
    assert value(samples, "tokenstore_revocations_total", kind="limit") == 1


async def test_labels_never_hold_paths_ids_or_tokens(client: Client) -> None:
    user = "secret-user-🔑"
    body = await issue(client, user, "some-app")
    await introspect(client, body["token"])
    await client.get(f"/v1/tokens/{body['id']}")
    await client.get(f"/v1/users/{user}/tokens")
    text, _ = await scrape(client)
    for leak in (user, "secret-user", body["token"], body["id"], "some-app", "/v1/"):
        assert leak not in text, leak


async def test_an_empty_event_stream_has_no_lag(client: Client) -> None:
    _, samples = await scrape(client)
    assert value(samples, "tokenstore_event_stream_length") == 0
    assert ("tokenstore_event_stream_lag_seconds", frozenset()) not in samples


async def test_redis_errors_are_counted_and_metrics_still_answer(
    aiohttp_client: Any, clients_file: Path
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    down = Settings(redis_url=url, redis_timeout=0.2, clients_file=str(clients_file))
    client: Client = await aiohttp_client(create_app(down), headers=ADMIN_HEADERS)
    response = await client.post("/v1/introspect", json={"token": "external-value"})
    assert response.status == 503
    _, samples = await scrape(client)
    assert value(samples, "tokenstore_redis_errors_total", op="connect", error="ConnectionError")
    assert value(samples, "tokenstore_http_requests_total", route="v1.introspect", status="503")
    assert not [name for name, _ in samples if name.startswith("tokenstore_event_stream")]


# --- service.metrics.Metrics itself ---------------------------------------------------------

SECONDS = [0, 0.0001, 0.0003, 0.0005, 0.0007, 0.001, 0.3, 1, 1.5, 2.5, 9.99, 10, 11, 1e9]


def observe_all(metrics: Metrics, rounds: int = 3) -> None:
    """The same observations, in the same order, for every process of the tests below."""
    for n in range(rounds):
        for i, seconds in enumerate(SECONDS):
            metrics.started()
            metrics.finished(
                ("v1.introspect", "v1.issue", "unmatched")[i % 3], 200 + i % 2, seconds
            )
            metrics.redis_call(("read_batch", "issue")[i % 2], seconds / 10, None)
            metrics.introspected(active=i % 3 == 0)
        metrics.redis_call("connect", 0.2, "ConnectionError")
        metrics.redis_call("issue", 0.02, "TimeoutError")
        metrics.issued(registered=n == 1)
        metrics.revoked(("token", "user", "limit")[n])
        metrics.webhook_delivery("audit", ("delivered", "retried", "delivered")[n])
        metrics.webhook_backlog("audit", n)
        metrics.webhook_lease("audit", held=n != 1)
        metrics.started()  # one request per round still in flight
        metrics.feed_subscribers += 1  # and one feed stream per round open


def prometheus_client_text(rounds: int = 3) -> bytes:
    """What prometheus_client's own objects expose for ``observe_all``'s observations."""
    r = prometheus_client.CollectorRegistry()
    labels = ("route", "status")
    requests = prometheus_client.Counter(HTTP_REQUESTS.name, HTTP_REQUESTS.help, labels, registry=r)
    http = prometheus_client.Histogram(
        HTTP_SECONDS.name, HTTP_SECONDS.help, labels, buckets=HTTP_BUCKETS, registry=r
    )
    in_flight = prometheus_client.Gauge(IN_FLIGHT.name, IN_FLIGHT.help, registry=r)
    feed = prometheus_client.Gauge(FEED_SUBSCRIBERS.name, FEED_SUBSCRIBERS.help, registry=r)
    redis = prometheus_client.Histogram(
        REDIS_SECONDS.name, REDIS_SECONDS.help, ["op"], buckets=REDIS_BUCKETS, registry=r
    )
    counters = {
        f.name: prometheus_client.Counter(f.name, f.help, f.labels, registry=r)
        for f in (REDIS_ERRORS, ISSUED, REVOCATIONS, INTROSPECTIONS, WEBHOOK_DELIVERIES)
    }
    backlog = prometheus_client.Gauge(
        WEBHOOK_BACKLOG.name, WEBHOOK_BACKLOG.help, WEBHOOK_BACKLOG.labels, registry=r
    )
    lease = prometheus_client.Gauge(
        WEBHOOK_LEASE.name, WEBHOOK_LEASE.help, WEBHOOK_LEASE.labels, registry=r
    )
    counters[INTROSPECTIONS.name].labels("active")
    counters[INTROSPECTIONS.name].labels("inactive")
    for n in range(rounds):
        for i, seconds in enumerate(SECONDS):
            route, status = ("v1.introspect", "v1.issue", "unmatched")[i % 3], str(200 + i % 2)
            requests.labels(route, status).inc()
            http.labels(route, status).observe(seconds)
            redis.labels(("read_batch", "issue")[i % 2]).observe(seconds / 10)
            counters[INTROSPECTIONS.name].labels("active" if i % 3 == 0 else "inactive").inc()
        redis.labels("connect").observe(0.2)
        counters[REDIS_ERRORS.name].labels("connect", "ConnectionError").inc()
        redis.labels("issue").observe(0.02)
        counters[REDIS_ERRORS.name].labels("issue", "TimeoutError").inc()
        counters[ISSUED.name].labels("registered" if n == 1 else "minted").inc()
        counters[REVOCATIONS.name].labels(("token", "user", "limit")[n]).inc()
        counters[WEBHOOK_DELIVERIES.name].labels(
            "audit", ("delivered", "retried", "delivered")[n]
        ).inc()
        backlog.labels("audit").set(n)
        lease.labels("audit").set(float(n != 1))
        in_flight.inc()
        feed.inc()
    text = prometheus_client.generate_latest(r).decode()
    # The service has no `*_created` series (a worker's would mean nothing in a sum).
    return "".join(line for line in text.splitlines(True) if "_created" not in line).encode()


def test_the_text_is_prometheus_client_s_for_the_same_observations() -> None:
    metrics = Metrics()
    assert metrics.render() == prometheus_client_text(rounds=0)  # introspection results at 0
    observe_all(metrics)
    assert metrics.render() == prometheus_client_text()


def parsed(text: bytes) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_workers_snapshots_add_up_and_an_exited_worker_is_no_longer_in_flight(
    tmp_path: Path,
) -> None:
    directory = str(tmp_path)
    scraped, other, exited = (Metrics(directory, pid) for pid in (101, 102, 103))
    for metrics in (scraped, other, exited):
        observe_all(metrics, rounds=1)
        metrics.write_snapshot()
    observe_all(scraped, rounds=1)  # since its snapshot: its live numbers count, and once
    observe_all(other, rounds=1)  # since its snapshot: not seen before its next one
    one_process = Metrics()
    for _ in range(4):  # what the scrape sees: 2 of `scraped`, 1 of `other`, 1 of `exited`
        observe_all(one_process, rounds=1)
    expected = parsed(one_process.render())
    assert parsed(scraped.render()) == pytest.approx(expected)  # sums added in another order

    mark_process_dead(103, directory)
    mark_process_dead(104, directory)  # exited before its first snapshot: nothing to do
    no_labels = frozenset[tuple[str, str]]()
    live = {(IN_FLIGHT.name, no_labels): 3, (FEED_SUBSCRIBERS.name, no_labels): 3}
    assert parsed(scraped.render()) == pytest.approx(expected | live)  # `exited`'s are gone
    assert sorted(os.listdir(directory)) == [f"metrics_{pid}.json" for pid in (101, 102, 103)]


def test_a_webhook_backlog_is_the_largest_any_worker_reports(tmp_path: Path) -> None:
    # Every worker reads the same consumer group's backlog: a sum would count it N times.
    directory = str(tmp_path)
    scraped, other = Metrics(directory, 1), Metrics(directory, 2)
    scraped.webhook_backlog("audit", 5)
    other.webhook_backlog("audit", 7)
    other.webhook_backlog("billing", 1)
    scraped.webhook_lease("audit", held=False)  # the lease: 1 where any worker holds it
    other.webhook_lease("audit", held=True)
    other.webhook_delivery("audit", "delivered")
    scraped.webhook_delivery("audit", "delivered")
    other.write_snapshot()
    samples = parsed(scraped.render())
    assert samples[WEBHOOK_BACKLOG.name, frozenset({("webhook", "audit")})] == 7
    assert samples[WEBHOOK_BACKLOG.name, frozenset({("webhook", "billing")})] == 1
    assert samples[WEBHOOK_LEASE.name, frozenset({("webhook", "audit")})] == 1
    delivered = frozenset({("webhook", "audit"), ("outcome", "delivered")})
    assert samples[WEBHOOK_DELIVERIES.name + "_total", delivered] == 2


async def test_a_worker_writes_its_snapshot_at_start_and_at_the_end(
    aiohttp_client: Any, clients_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    monkeypatch.setenv(METRICS_DIR_ENV, str(directory))
    client: Client = await aiohttp_client(create_app(Settings(clients_file=str(clients_file))))
    path = directory / f"metrics_{os.getpid()}.json"
    assert Tally.loads(path.read_bytes()).counters[INTROSPECTIONS.name] == {
        ("active",): 0,
        ("inactive",): 0,
    }
    await client.get("/healthz")
    await client.close()
    tally = Tally.loads(path.read_bytes())
    assert tally.in_flight == 0
    assert sum(tally.histograms[HTTP_SECONDS.name]["health.healthz", "200"].counts) == 1
