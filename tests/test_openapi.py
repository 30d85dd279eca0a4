"""The OpenAPI document describes exactly the routes the router serves."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from service.api.openapi import document
from service.app import create_app
from service.settings import Settings


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        if route.method != "*":
            operations.add((route.method.lower(), path))
    return operations


def test_document_matches_router() -> None:
    doc = document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == _router_operations(create_app(Settings()))


def test_document_is_openapi_31_with_resolvable_refs() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    text = repr(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"], name
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            assert operation["responses"], path
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), path


async def test_document_is_served(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings()))
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert (await response.json())["paths"].keys() == document()["paths"].keys()
