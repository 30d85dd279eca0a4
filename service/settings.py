"""Settings: one frozen object read from ``TOKENSTORE_*`` environment variables.

A bad value stops start-up with a message naming the variable, its value and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

ENV_PREFIX = "TOKENSTORE_"


class SettingsError(ValueError):
    """A ``TOKENSTORE_*`` variable has a value the service cannot use."""


N = TypeVar("N", int, float)


def _number_in(kind: type[N], low: N, high: N) -> Callable[[str], N]:
    def parse(raw: str) -> N:
        value = kind(raw)
        if not low <= value <= high:  # also refuses nan
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    return _number_in(int, low, high)


def _float_in(low: float, high: float) -> Callable[[str], float]:
    return _number_in(float, low, high)


def _redis_url(raw: str) -> str | None:
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return raw


def _key_prefix(raw: str) -> str:
    # Braces would start a Cluster hash tag and break the slot of every key built on the prefix.
    if "{" in raw or "}" in raw or len(raw) > 32:
        raise ValueError("expected at most 32 characters and no braces")
    return raw


def _optional_path(raw: str) -> str | None:
    return raw or None


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_name(raw: str) -> str:
    # An HTTP field name (RFC 9110 token): anything else could never match a request header.
    if not 1 <= len(raw) <= 64 or _HEADER_NAME_RE.fullmatch(raw) is None:
        raise ValueError("expected an HTTP header name")
    return raw


def parse_workers(raw: str) -> int:
    """Worker processes; ``auto`` is 0, which stands for one per CPU (resolved at start)."""
    if raw.lower() == "auto":
        return 0
    if not raw.isdigit() or int(raw) > 1024:
        raise ValueError("expected auto or a number of processes from 0 to 1024")
    return int(raw)


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError("expected true or false")
    return value in {"1", "true", "yes", "on"}


def _setting(default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc})


DAY = 86_400


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = _setting(
        None, _redis_url, "Redis URL; a Cluster is detected. Unset: embedded in-memory store."
    )
    host: str = _setting("127.0.0.1", str, "Address to listen on.")
    port: int = _setting(8080, _int_in(1, 65535), "Port to listen on.")
    default_ttl: int = _setting(
        3600, _int_in(1, 10 * 365 * DAY), "Token lifetime (s) if none given."
    )
    max_ttl: int = _setting(30 * DAY, _int_in(1, 10 * 365 * DAY), "Longest token lifetime (s).")
    max_tokens_per_user: int = _setting(
        0, _int_in(0, 100_000), "Live tokens per user; past it the oldest are revoked. 0: no limit."
    )
    key_prefix: str = _setting("ts:", _key_prefix, "Prefix of every Redis key.")
    redis_pool_size: int = _setting(64, _int_in(1, 10_000), "Redis connections per process.")
    redis_timeout: float = _setting(
        2.0, _float_in(0.05, 60), "Seconds to wait for Redis (connect, command, free connection)."
    )
    allow_evicting_redis: bool = _setting(
        False, _bool, "Serve even if Redis may evict keys (revocations could come undone)."
    )
    max_body_bytes: int = _setting(65_536, _int_in(1024, 16 * 1024 * 1024), "Largest request body.")
    max_metadata_bytes: int = _setting(
        4096, _int_in(2, 65_536), "Largest token `metadata` object, as JSON bytes."
    )
    log_level: str = _setting("INFO", _log_level, "Log level.")
    clients_file: str | None = _setting(
        None, _optional_path, "JSON file of API clients; required with a Redis URL."
    )
    authz_header: str = _setting(
        "Authorization", _header_name, "Header `/v1/authz` reads the bearer token from."
    )
    cache_max_age: int = _setting(
        5, _int_in(0, DAY), "Longest `max-age` (s) of a live answer; 0: `no-store`."
    )
    negative_cache_max_age: int = _setting(
        1, _int_in(0, 3600), "`max-age` (s) of an inactive answer; 0: `no-store`."
    )
    feed_heartbeat: float = _setting(
        15.0, _float_in(0.05, 300), "Seconds between heartbeats on `/v1/events`."
    )
    shutdown_timeout: float = _setting(
        20.0, _float_in(0, 3600), "Seconds in-flight requests get to finish after SIGTERM."
    )
    shutdown_delay: float = _setting(
        0.0, _float_in(0, 300), "Seconds between SIGTERM and closing the listener (503 /readyz)."
    )
    workers: int = _setting(
        1, parse_workers, "Processes sharing the port (SO_REUSEPORT). 0 or `auto`: one per CPU."
    )
    log_user_ids: bool = _setting(False, _bool, "Put the user id of the path in request logs.")
    header_timeout: float = _setting(
        10.0, _float_in(0.05, 3600), "Seconds a client has to send a request head, once begun."
    )
    body_timeout: float = _setting(
        10.0, _float_in(0.05, 3600), "Seconds a client has to send a request body (408 past it)."
    )
    keepalive_timeout: float = _setting(
        75.0, _float_in(0.05, 3600), "Seconds an idle connection is kept open."
    )
    max_connections: int = _setting(
        1000, _int_in(1, 1_000_000), "Open connections per process; more get 503 and are closed."
    )
    rotation_grace: int = _setting(
        0, _int_in(0, 3600), "Seconds a rotated token's immediate successor may be re-issued."
    )
    idle_resolution: int = _setting(
        60, _int_in(1, 3600), "Most seconds between recorded uses of a token with an idle TTL."
    )

    def __post_init__(self) -> None:
        if self.default_ttl > self.max_ttl:
            raise SettingsError(
                f"{env_name('default_ttl')} ({self.default_ttl}) is greater than "
                f"{env_name('max_ttl')} ({self.max_ttl})"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = env_name(f.name)
            if name not in environ:
                continue
            raw = environ[name].strip()
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{name} has value {raw!r}: {exc}") from None
        return cls(**values)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def documented_settings() -> list[tuple[str, Any, str]]:
    """(variable, default, description) of every setting, for the README table and its test."""
    return [(env_name(f.name), f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)]
