"""The OpenAPI document describes exactly the routes the router serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from service import tokens, validation
from service.api.access import RULES
from service.api.openapi import document
from service.api.routing import ROUTES
from service.api.usergrid import CALLBACK_PATTERN
from service.app import create_app
from service.app_index import CURSOR_PATTERN, AppCursor
from service.clients import ClientRegistry
from service.errors import BadRequest
from service.feed import EVENT_ID_PATTERN, parse_event_id
from service.identity import PERCENT_ENCODED_PATTERN, decode_header
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


def _accepts(check: Callable[[str], object]) -> Callable[[str], bool]:
    """``check`` as a predicate: False where it raises BadRequest or ValueError or answers None."""

    def accepts(value: str) -> bool:
        try:
            return check(value) is not None
        except (BadRequest, ValueError):
            return False

    return accepts


# Each pattern the document states, and the check the service applies to the same value.
PATTERNS: list[tuple[str, str, Callable[[str], bool]]] = [
    ("scope requirement", validation.SCOPE_LIST_PATTERN, _accepts(validation.scope_list)),
    ("type", validation.TYPE_PATTERN, _accepts(validation.token_type)),
    ("token id", tokens.ID_PATTERN, _accepts(tokens.parse_id)),
    # Empty is "from the start": the document admits it too.
    ("app cursor", f"(?:{CURSOR_PATTERN})?", _accepts(AppCursor.parse)),
    ("event id", EVENT_ID_PATTERN, _accepts(parse_event_id)),
    ("percent-encoded id", PERCENT_ENCODED_PATTERN, _accepts(decode_header)),
    ("JSONP callback", CALLBACK_PATTERN, _accepts(re.compile(CALLBACK_PATTERN).fullmatch)),
]


@pytest.mark.parametrize(
    ("pattern", "check"), [p[1:] for p in PATTERNS], ids=[p[0] for p in PATTERNS]
)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_each_documented_pattern_is_exactly_what_the_service_accepts(
    pattern: str, check: Callable[[str], bool], data: st.DataObject
) -> None:
    matching = st.from_regex(pattern, fullmatch=True)
    # Near misses: a matching value with one character changed, added or dropped.
    near = st.tuples(matching, st.integers(0, 300), st.characters(), st.sampled_from("cad"))
    value = data.draw(st.one_of(st.text(), matching, near.map(_mutate)))
    assert (re.fullmatch(pattern, value) is not None) == check(value), value


def _mutate(drawn: tuple[str, int, str, str]) -> str:
    value, at, char, how = drawn
    at = at % (len(value) + 1)
    if how == "a":
        return value[:at] + char + value[at:]
    if how == "d":
        return value[:at] + value[at + 1 :]
    return value[:at] + char + value[at + 1 :]


def test_path_parameters_never_take_what_a_url_resolves_away() -> None:
    # "." and ".." as a path segment never reach the service: clients resolve them.
    for path, operations in _document()["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                if parameter["in"] != "path" or schema.get("not") == {"enum": [".", ".."]}:
                    continue
                assert not re.fullmatch(schema["pattern"].strip("^$"), "."), path
                assert not re.fullmatch(schema["pattern"].strip("^$"), ".."), path


def test_usergrid_answers_document_jsonp() -> None:
    for path, operations in _document()["paths"].items():
        if not path.endswith(("/revoketoken", "/revoketokens")):
            continue
        for operation in operations.values():
            for status, response in operation["responses"].items():
                types = set(response["content"])
                assert types == {"application/json", "application/javascript"}, (path, status)


def test_issue_schema_states_the_configured_ttl_limit() -> None:
    app = _app()
    routes, rules = app[ROUTES], app[RULES]
    doc = document(routes, rules, Settings(default_ttl=60, max_ttl=120))
    ttl = doc["components"]["schemas"]["IssueRequest"]["properties"]["ttl"]
    assert (ttl["minimum"], ttl["maximum"]) == (1, 120)
    # null means the default for every field but the token, which must be a string if given.
    properties = doc["components"]["schemas"]["IssueRequest"]["properties"]
    nullable = {name for name, schema in properties.items() if "null" in schema["type"]}
    assert nullable == set(properties) - {"user_id", "app_id", "token"}
