"""The application factory: ``create_app(settings)`` builds one self-contained service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from service import clients_file
from service.api import (
    access,
    authz,
    console,
    feed,
    fusionauth,
    health,
    jwt,
    native,
    oauth,
    onegini,
    openapi,
    routing,
    sessions,
    usergrid,
    webhooks,
)  # fmt: skip
from service.api import metrics as metrics_api
from service.api.errors import ERROR_RENDERERS
from service.api.observe import request_middleware
from service.api.responses import CLIENTS, SERVICE, SETTINGS, STORE, SWEEPER
from service.api.routing import ROUTES, Dialect
from service.auth import CredentialCache
from service.clients import ClientRegistry
from service.errors import Unavailable
from service.keyspace import KeyspaceRefused
from service.lifecycle import LIFECYCLE, Lifecycle
from service.metrics import Metrics
from service.redis_client import check_embedded_store
from service.service import TokenService
from service.settings import Settings
from service.store import TokenStore
from service.sweeper import AppSweeper

log = logging.getLogger(__name__)

EMBEDDED_WARNING = (
    "TOKENSTORE_REDIS_URL is not set: running on the EMBEDDED IN-MEMORY store. Nothing is "
    "persisted, nothing is shared between processes, and every token is lost on exit. "
    "Set TOKENSTORE_REDIS_URL for anything but a trial."
)

# In the router's order: usergrid's /{org}/{app}/users/... pattern is the broadest, so last.
DIALECTS: tuple[Dialect, ...] = (
    health.DIALECT,
    native.DIALECT,
    sessions.DIALECT,
    oauth.DIALECT,
    fusionauth.DIALECT,
    onegini.DIALECT,
    authz.DIALECT,
    feed.DIALECT,
    usergrid.DIALECT,
    openapi.DIALECT,
    metrics_api.DIALECT,
    webhooks.DIALECT,
)


def create_app(settings: Settings, clients: ClientRegistry | None = None) -> web.Application:
    """The service; ``clients`` None: from ``settings`` (may raise ClientsError)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_middleware],
    )
    if settings.redis_url is None:
        check_embedded_store()  # before the quick start prints a secret it could not serve
    app[SETTINGS] = settings
    app[ERROR_RENDERERS] = {}
    app[access.RULES] = {}
    app[ROUTES] = []
    app[CLIENTS] = clients_file.for_settings(settings) if clients is None else clients
    app[access.CREDENTIALS] = CredentialCache()
    app[LIFECYCLE] = Lifecycle()
    metrics = app[metrics_api.METRICS] = Metrics.from_env()
    store = TokenStore(settings, metrics)
    app[STORE] = store
    app[SERVICE] = TokenService(store, settings, metrics)
    app[SWEEPER] = AppSweeper(store.apps)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_jwks)
    app.cleanup_ctx.append(metrics_api.snapshots)
    for dialect in DIALECTS:
        routing.add(app, dialect)
    if settings.console:
        routing.add(app, console.DIALECT)
    if settings.jwt_enabled:
        routing.add(app, jwt.DIALECT)
    access.check_rules(app)  # catches a route added to the router outside any dialect
    return app


async def _jwks(app: web.Application) -> AsyncIterator[None]:
    """The JWKS URL's keys: fetched before serving, refreshed until shutdown."""
    rules = app[SERVICE].jwt
    fetcher = None if rules is None else rules.fetcher
    if fetcher is not None:
        await fetcher.start()
    yield
    if fetcher is not None:
        await fetcher.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    if store.connector.embedded:
        log.warning("=" * 20 + " " + EMBEDDED_WARNING + " " + "=" * 20)
    try:
        await store.client()
    except KeyspaceRefused:
        raise  # logged by the store, with what to do
    except Unavailable:
        log.error("Redis is not reachable at start-up; serving 503 until it is")
    sweeper = asyncio.create_task(app[SWEEPER].run())
    yield
    app[SWEEPER].stop()
    try:
        await asyncio.wait_for(sweeper, timeout=5)
    except TimeoutError:
        log.warning("app sweep did not stop in time; it resumes on the next start")
    await app[SERVICE].close()  # writes the token uses still pending
    await store.close()
