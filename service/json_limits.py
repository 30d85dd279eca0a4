"""How deep JSON may nest: the bound every request body is held to, and stored JSON is read with.

orjson refuses to write anything nested more than 254 deep (and reads up to 1024), so a
value read in one request could fail to be written in another: a listing wrapping stored
metadata in three more levels, an event wrapping ``eventInfo``. Bounding input far below that
keeps every answer writable; reading stored JSON with the same bound keeps anything stored
before (or damaged) from failing an answer.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 32  # a whole request body; {} and [] are 1 deep


class TooDeep(ValueError):
    """JSON nested deeper than allowed."""


def too_deep(value: Any, limit: int) -> bool:
    """True if ``value`` nests objects and arrays more than ``limit`` deep."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    # The recursion stops at ``limit``: it can never go deeper than the bound itself.
    return limit < 1 or any(too_deep(child, limit - 1) for child in children)


def loads(raw: bytes | str, limit: int = MAX_DEPTH) -> Any:
    """``orjson.loads`` that also raises TooDeep past ``limit``."""
    value = orjson.loads(raw)
    # A value holds at least as many brackets as it is deep: most bodies need no walk.
    if _brackets(raw) > limit and too_deep(value, limit):
        raise TooDeep(f"JSON nested more than {limit} deep")
    return value


def _brackets(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("{") + raw.count("[")
    return raw.count(b"{") + raw.count(b"[")


def loads_stored(raw: bytes | str) -> Any | None:
    """Stored JSON as ``loads`` reads it, or None if it cannot be: written before the bound, or
    damaged. The caller answers without it rather than fail."""
    try:
        return loads(raw)
    except ValueError:  # orjson.JSONDecodeError and TooDeep
        return None
