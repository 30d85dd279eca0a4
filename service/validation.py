"""Domain rules for values every API dialect passes to the service."""

from __future__ import annotations

import re
from typing import Any

import orjson

from service import json_limits
from service.errors import BadRequest, PayloadTooLarge

MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_TYPE_CHARS = 64
MAX_SCOPES = 64
MAX_SCOPE_CHARS = 128
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def identifier(name: str, value: str) -> str:
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise BadRequest(f"{name} must be 1 to {MAX_ID_CHARS} characters")
    return value


def token_type(value: str) -> str:
    if not 1 <= len(value) <= MAX_TYPE_CHARS or not value.isprintable():
        raise BadRequest(f"type must be 1 to {MAX_TYPE_CHARS} printable characters")
    return value


def scopes(values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_SCOPES:
        raise BadRequest(f"at most {MAX_SCOPES} scopes")
    for scope in values:
        if len(scope) > MAX_SCOPE_CHARS or _SCOPE_RE.fullmatch(scope) is None:
            raise BadRequest(f"scope {scope[:40]!r} is not an RFC 6749 scope token")
    return tuple(dict.fromkeys(values))


def optional_name(name: str, value: str | None) -> str | None:
    if value is not None and len(value) > MAX_NAME_CHARS:
        raise BadRequest(f"{name} must be at most {MAX_NAME_CHARS} characters")
    return value or None


def metadata(value: dict[str, Any] | None, limit: int) -> dict[str, Any] | None:
    if value is None:
        return None
    # Checked first: orjson cannot even measure what nests more than 254 deep.
    if json_limits.too_deep(value, json_limits.MAX_DEPTH - 1):
        raise BadRequest(f"metadata must nest at most {json_limits.MAX_DEPTH - 1} deep")
    if len(orjson.dumps(value)) > limit:
        raise PayloadTooLarge(f"metadata must be at most {limit} bytes of JSON")
    return value or None


def ttl(value: int | None, default: int, maximum: int, name: str = "ttl") -> int:
    if value is None:
        return default
    if not 1 <= value <= maximum:
        raise BadRequest(f"{name} must be from 1 to {maximum} seconds", code=f"invalid_{name}")
    return value
