"""The OpenAPI document describes exactly the routes the router serves."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from service.api.access import RULES
from service.api.openapi import document
from service.api.routing import ROUTES
from service.app import create_app
from service.clients import ClientRegistry
from service.settings import Settings


def _app() -> web.Application:
    return create_app(Settings(), ClientRegistry([]))


def _router_operations(app: web.Application) -> set[tuple[str, str, str]]:
    operations = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        if route.method != "*":
            operations.add((route.method.lower(), path, route.name or ""))
    return operations


def _document() -> dict[str, Any]:
    app = _app()
    routes, rules = app[ROUTES], app[RULES]
    return document(routes, rules, Settings())


def test_document_matches_router() -> None:
    doc = _document()
    documented = {
        (method, path, op["operationId"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert documented == _router_operations(_app())


def test_document_is_openapi_31_with_resolvable_refs() -> None:
    doc = _document()
    assert doc["openapi"].startswith("3.1")
    text = repr(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"], name
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            assert operation["responses"], path
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), path


async def test_document_is_served_without_credentials(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app())
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert (await response.json())["paths"].keys() == _document()["paths"].keys()
