"""Probes: ``/healthz`` says the process is alive (never asks Redis), ``/readyz`` that it can
serve (Redis answers and is safe to serve: it may not evict keys; shutdown has not begun).

On a Cluster, a primary that does not answer leaves the process ready (``unreachable_nodes``
counts them): it fails only the tokens it holds, and a probe failing on every process at once
would take the whole service out of its load balancer for one shard's outage."""

from __future__ import annotations

from aiohttp import web

from service.api.responses import STORE, json_response
from service.api.routing import Dialect, Route
from service.auth import OPEN
from service.errors import Unavailable
from service.keyspace import KeyspaceRefused, UnsafeRedis
from service.lifecycle import LIFECYCLE


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[LIFECYCLE].draining:
        # At once, without asking Redis: load balancers must stop sending before we stop.
        return json_response({"status": "shutting_down"}, status=503)
    store = request.app[STORE]
    try:
        unreachable = await store.readiness()
    except UnsafeRedis:
        return json_response({"status": "unsafe_redis", "redis": "evicting"}, status=503)
    except KeyspaceRefused:
        return json_response({"status": "refused", "redis": "not servable"}, status=503)
    except Unavailable:
        return json_response({"status": "unavailable", "redis": "down"}, status=503)
    backend = "embedded" if store.connector.embedded else "redis"
    if store.connector.cluster:
        backend = "redis-cluster"
    if unreachable:  # the other primaries serve their tokens: still ready
        return json_response(
            {"status": "ready", "redis": backend, "unreachable_nodes": unreachable}
        )
    return json_response({"status": "ready", "redis": backend})


DIALECT = Dialect("health", (
    Route("GET", "/healthz", healthz, name="health.healthz", rule=OPEN, openapi={
        "summary": "Liveness: the process runs (never asks Redis)",
        "responses": {"200": {"description": "Alive"}}}),
    Route("GET", "/readyz", readyz, name="health.readyz", rule=OPEN, openapi={
        "summary": "Readiness: Redis answers and may not evict keys",
        "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}),
))  # fmt: skip
