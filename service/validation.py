"""Domain rules for values every API dialect passes to the service."""

from __future__ import annotations

import re
from typing import Any

import orjson

from service import json_limits, tokens
from service.errors import BadRequest, PayloadTooLarge

MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_TYPE_CHARS = 64
MAX_SCOPES = 64
MAX_SCOPE_CHARS = 128
# The rules below as patterns: the OpenAPI document states them, the checks here use them.
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_PATTERN = rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_SCOPE_CHARS}}}"
# Scopes in one string (a requirement of /v1/authz): separated by spaces, at most MAX_SCOPES.
SCOPE_LIST_PATTERN = rf" *(?:{SCOPE_PATTERN}(?: +{SCOPE_PATTERN}){{0,{MAX_SCOPES - 1}}})? *"
# A type: no control characters (C0, DEL, C1): it is shown as is.
TYPE_PATTERN = rf"[^\x00-\x1f\x7f-\x9f]{{1,{MAX_TYPE_CHARS}}}"
_SCOPE_RE = re.compile(SCOPE_PATTERN)
_TYPE_RE = re.compile(TYPE_PATTERN)


def identifier(name: str, value: str) -> str:
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise BadRequest(f"{name} must be 1 to {MAX_ID_CHARS} characters")
    return value


def token_type(value: str) -> str:
    if _TYPE_RE.fullmatch(value) is None:
        raise BadRequest(f"type must be 1 to {MAX_TYPE_CHARS} characters, none a control one")
    return value


def scopes(values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_SCOPES:
        raise BadRequest(f"at most {MAX_SCOPES} scopes")
    for scope in values:
        if _SCOPE_RE.fullmatch(scope) is None:
            raise BadRequest(f"scope {scope[:40]!r} is not an RFC 6749 scope token")
    return tuple(dict.fromkeys(values))


def scope_list(raw: str) -> tuple[str, ...]:
    """Scopes in one string: separated by spaces (RFC 6749 3.3); other whitespace is part of
    a (bad) scope."""
    return scopes([scope for scope in raw.split(" ") if scope])


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


def registrable_token(value: str) -> str:
    """An externally minted token value, as it may be registered."""
    if not 1 <= len(value) <= tokens.MAX_TOKEN_CHARS:
        raise BadRequest(f"token must be 1 to {tokens.MAX_TOKEN_CHARS} characters")
    if tokens.looks_minted(value):
        raise BadRequest(f"tokens starting with {tokens.PREFIX!r} are minted here, not registered")
    return value
