"""Reading request bodies and query strings strictly: wrong types and unknown fields are 400s,
and so is JSON nested more than ``json_limits.MAX_DEPTH`` deep (every JSON body is read here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from service import json_limits
from service.api.responses import SETTINGS
from service.errors import BadRequest, PayloadTooLarge, RequestTimeout


@asynccontextmanager
async def _reading(request: web.Request) -> AsyncIterator[None]:
    """While a body is read: it must arrive within ``TOKENSTORE_BODY_TIMEOUT`` (408), and what
    cannot be read is the client's error, a 4xx."""
    seconds = request.app[SETTINGS].body_timeout
    try:
        if request.content.is_eof():
            # Whole already (a small body comes with its head): no timer to arm and cancel,
            # which cost a twentieth of an introspection.
            yield
            return
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {seconds} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the body must be at most {request.client_max_size} bytes") from None
    except web.RequestPayloadError:  # bad chunked framing or content encoding
        raise BadRequest("the body could not be decoded", code="invalid_body") from None
    except ConnectionResetError:  # the client left half-way: nobody reads this answer
        raise BadRequest("the body was cut short", code="invalid_body") from None


async def read_body(request: web.Request) -> bytes:
    async with _reading(request):
        return await request.read()


async def json_object(request: web.Request) -> dict[str, Any]:
    body = parse_json(await read_body(request))
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return body


def parse_json(raw: bytes, *, code: str = "invalid_json", deep_code: str = "json_too_deep") -> Any:
    """A JSON body, nested at most ``json_limits.MAX_DEPTH`` deep; else a 400 with ``code``
    (not JSON) or ``deep_code`` (too deep)."""
    too_deep = f"the body nests JSON more than {json_limits.MAX_DEPTH} deep"
    try:
        return json_limits.loads(raw)
    except json_limits.TooDeep:
        raise BadRequest(too_deep, code=deep_code) from None
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own bound, 1024
            raise BadRequest(too_deep, code=deep_code) from None
        raise BadRequest("the body is not valid JSON", code=code) from None


class Fields:
    """Typed access to a JSON object's fields; refuses fields it was not told about."""

    def __init__(self, body: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(unknown)}", code="unknown_field")
        self.body = body

    def _get(
        self,
        name: str,
        kind: type | tuple[type, ...],
        label: str,
        required: bool,
        nullable: bool = True,
    ) -> Any:
        value = self.body.get(name)
        if value is None:
            if required:
                raise BadRequest(f"{name} is required", code="missing_field")
            if not nullable and name in self.body:
                raise BadRequest(f"{name} must be {label}, not null", code="invalid_field")
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise BadRequest(f"{name} must be {label}", code="invalid_field")
        return value

    def text(self, name: str, *, required: bool = False, nullable: bool = True) -> str | None:
        """The string, or None if absent (or null, when ``nullable``)."""
        value: str | None = self._get(name, str, "a string", required, nullable)
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str) -> int | None:
        # JSON has numbers, not integers: 60.0 is an integer too (JSON Schema says so).
        value: int | float | None = self._get(name, (int, float), "an integer", False)
        if isinstance(value, float):
            if not value.is_integer():
                raise BadRequest(f"{name} must be an integer", code="invalid_field")
            return int(value)
        return value

    def text_list(self, name: str) -> list[str] | None:
        value: list[Any] | None = self._get(name, list, "an array of strings", False)
        if value is not None and not all(isinstance(item, str) for item in value):
            raise BadRequest(f"{name} must be an array of strings", code="invalid_field")
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._get(name, dict, "a JSON object", False)
        return value


def query_int(query: MultiMapping[str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only (str.isdigit admits "²", which int() refuses) and few of them (int()
    # refuses more than 4,300): anything else is the caller's mistake, a 400.
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw) > len(str(high))
        or not low <= int(raw) <= high
    ):
        raise BadRequest(f"{name} must be an integer from {low} to {high}", code="invalid_query")
    return int(raw)


FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


async def form_fields(request: web.Request) -> dict[str, str]:
    """A form body's fields (RFC 6749 endpoints accept nothing else)."""
    if request.content_type not in FORM_TYPES:
        raise BadRequest("the body must be application/x-www-form-urlencoded")
    try:
        async with _reading(request):
            fields = await request.post()
    except (ValueError, LookupError):  # an unknown charset, undecodable text, a bad multipart
        raise BadRequest("the form body could not be read", code="invalid_body") from None
    return {k: v for k, v in fields.items() if isinstance(v, str)}
