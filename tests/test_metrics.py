"""GET /metrics in one process, on every backend: what is counted, and what never appears."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from helpers import ADMIN_HEADERS, Client, introspect, issue
from prometheus_client.parser import text_string_to_metric_families
from redis_servers import free_port

from service.app import create_app
from service.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: Client) -> tuple[str, Samples]:
    """/metrics as Prometheus gets it: with no credentials."""
    async with (
        aiohttp.ClientSession() as session,
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
