"""JSON responses and the typed application state shared by every dialect."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from service.clients import ClientRegistry
from service.service import TokenService
from service.settings import Settings
from service.store import TokenStore
from service.sweeper import AppSweeper

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TokenStore)
SERVICE = web.AppKey("service", TokenService)
SWEEPER = web.AppKey("sweeper", AppSweeper)
CLIENTS = web.AppKey("clients", ClientRegistry)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def service(request: web.Request) -> TokenService:
    return request.app[SERVICE]
