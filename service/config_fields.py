"""Checks shared by the JSON configuration files (the clients file, the webhooks file): each
raises ValueError with a message naming the field, which the file's loader prefixes with the
file and the entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.validation import MAX_ID_CHARS

ALL_APPS = "*"


def string_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: expected a non-empty array of strings")
    return value


def some_of(name: str, value: Any, known: Sequence[str]) -> list[str]:
    """A non-empty list of names, each one of ``known`` (listed in that order when not)."""
    names = string_list(name, value)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{name}: unknown {unknown} (expected some of {list(known)})")
    return names


def apps(value: Any) -> frozenset[str] | None:
    """App ids, or ``["*"]`` for every app (None)."""
    ids = string_list("apps", value)
    if ALL_APPS in ids:
        if len(ids) > 1:
            raise ValueError(f'apps: "{ALL_APPS}" (every app) cannot be combined with app ids')
        return None
    if not all(1 <= len(app) <= MAX_ID_CHARS for app in ids):
        raise ValueError(f"apps: app ids are 1 to {MAX_ID_CHARS} characters")
    return frozenset(ids)
