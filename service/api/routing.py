"""One declaration per route: method, path, handler, access rule and OpenAPI entry together.

Each API dialect exposes one ``Dialect``; ``create_app`` walks them (``add``), so the router,
the access rules, the error renderers and the OpenAPI document all come from the same list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from aiohttp import web

from service.api import access
from service.api.errors import ERROR_RENDERERS, Handler, Renderer
from service.api.openapi_parts import Schema
from service.auth import Rule

_PATTERN = re.compile(r"\{(\w+):[^}]*\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path. A GET never implies HEAD: a HEAD route is declared like any."""

    method: str
    path: str  # aiohttp syntax: ``{name}`` or ``{name:regex}``
    handler: Handler
    _: KW_ONLY
    name: str  # the OpenAPI operationId; its first part picks the dialect's error renderer
    rule: Rule
    openapi: Schema | None  # the operation without operationId; None: deliberately undocumented

    @property
    def openapi_path(self) -> str:
        """The path as OpenAPI writes it: ``{name}`` without the regex."""
        return _PATTERN.sub(r"{\1}", self.path)


ROUTES = web.AppKey("routes", list[Route])  # every dialect's, in the router's order


@dataclass(frozen=True, slots=True)
class Dialect:
    """An API dialect: its routes (registered in this order), the body shape of its errors,
    and what its handlers need on the app besides the shared state."""

    name: str  # every route name starts with ``name.``
    routes: tuple[Route, ...]
    render_error: Renderer | None = None
    setup: Callable[[web.Application], None] | None = None
    # The routes' rules by name: what create_app registers for the access middleware.
    rules: dict[str, Rule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules: dict[str, Rule] = {}
        for route in self.routes:
            if not route.name.startswith(f"{self.name}."):
                raise ValueError(f"route {route.name!r} is outside dialect {self.name!r}")
            if route.name in rules:
                raise ValueError(f"route name {route.name!r} is declared twice")
            rules[route.name] = route.rule
        object.__setattr__(self, "rules", rules)


def add(app: web.Application, dialect: Dialect) -> None:
    """Serve the dialect: its setup, error renderer, access rules and routes."""
    if dialect.setup is not None:
        dialect.setup(app)
    if dialect.render_error is not None:
        if dialect.name in app[ERROR_RENDERERS]:
            raise ValueError(f"dialect {dialect.name!r} has two error renderers")
        app[ERROR_RENDERERS][dialect.name] = dialect.render_error
    app[access.RULES].update(dialect.rules)
    app[ROUTES].extend(dialect.routes)
    for route in dialect.routes:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
