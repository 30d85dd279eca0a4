"""One declaration per route: a dialect's routes carry their rule and OpenAPI entry, and
``create_app`` serves exactly what the dialects declare."""

from __future__ import annotations

import pytest
from aiohttp import web

from service.api import access, routing
from service.api.errors import HttpError, render_default
from service.api.openapi import document
from service.api.routing import ROUTES, Dialect, Route
from service.app import DIALECTS, create_app
from service.auth import OPEN
from service.clients import ClientRegistry
from service.settings import Settings


async def _hello(request: web.Request) -> web.Response:
    return web.Response()


def _render(request: web.Request, error: HttpError) -> web.StreamResponse:
    return render_default(request, error)


def _route(name: str, path: str = "/x", openapi: dict[str, object] | None = None) -> Route:
    return Route("GET", path, _hello, name=name, rule=OPEN, openapi=openapi)


def test_a_route_name_carries_its_dialect() -> None:
    with pytest.raises(ValueError, match="outside dialect 'a'"):
        Dialect("a", (_route("b.x"),))
    with pytest.raises(ValueError, match="declared twice"):
        Dialect("a", (_route("a.x"), _route("a.x", "/y")))


def test_one_error_renderer_per_dialect_name() -> None:
    app = create_app(Settings(), ClientRegistry([]))
    with pytest.raises(ValueError, match="two error renderers"):
        routing.add(app, Dialect("oauth", (_route("oauth.extra"),), render_error=_render))


def test_the_app_serves_what_the_dialects_declare() -> None:
    app = create_app(Settings(), ClientRegistry([]))
    declared = [route for dialect in DIALECTS for route in dialect.routes]
    assert app[ROUTES] == declared
    served = [(r.method, r.name, r.handler) for r in app.router.routes()]
    assert served == [(r.method, r.name, r.handler) for r in declared]
    assert app[access.RULES] == {r.name: r.rule for r in declared}


def test_an_undocumented_route_is_left_out_of_the_document() -> None:
    shown = _route("a.shown", "/v/{id:[0-9]+}", {"responses": {"200": {"description": "ok"}}})
    routes = [shown, _route("a.hidden", "/hidden")]
    paths = document(routes, {"a.shown": OPEN, "a.hidden": OPEN}, Settings())["paths"]
    assert paths == {
        "/v/{id}": {
            "get": {
                "operationId": "a.shown",
                "responses": {"200": {"description": "ok"}},
                "security": [],
            }
        }
    }
