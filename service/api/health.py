"""Probes: ``/healthz`` says the process is alive (never asks Redis), ``/readyz`` that it can
serve (Redis answers and is safe to serve: it may not evict keys; shutdown has not begun)."""

from __future__ import annotations

from aiohttp import web

from service.api.responses import STORE, json_response
from service.api.routing import Dialect, Route
from service.auth import OPEN
from service.errors import Unavailable
from service.lifecycle import LIFECYCLE
from service.store import KeyspaceRefused, UnsafeRedis


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[LIFECYCLE].draining:
        # At once, without asking Redis: load balancers must stop sending before we stop.
        return json_response({"status": "shutting_down"}, status=503)
    store = request.app[STORE]
    try:
        await store.ping()
        if not store.connector.embedded:
            await store.check_eviction()  # CONFIG SET may have changed it since start-up
    except UnsafeRedis:
        return json_response({"status": "unsafe_redis", "redis": "evicting"}, status=503)
    except KeyspaceRefused:
        return json_response({"status": "refused", "redis": "not servable"}, status=503)
    except Unavailable:
        return json_response({"status": "unavailable", "redis": "down"}, status=503)
    backend = "embedded" if store.connector.embedded else "redis"
    if store.connector.cluster:
        backend = "redis-cluster"
    return json_response({"status": "ready", "redis": backend})


DIALECT = Dialect("health", (
    Route("GET", "/healthz", healthz, name="health.healthz", rule=OPEN, openapi={
        "summary": "Liveness: the process runs (never asks Redis)",
        "responses": {"200": {"description": "Alive"}}}),
    Route("GET", "/readyz", readyz, name="health.readyz", rule=OPEN, openapi={
        "summary": "Readiness: Redis answers and may not evict keys",
        "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}),
))  # fmt: skip
