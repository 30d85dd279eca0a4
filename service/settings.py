"""Settings: one frozen object read from ``TOKENSTORE_*`` environment variables.

A bad value stops start-up with a message naming the variable, its value and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "TOKENSTORE_"
# Set by the service for its own worker processes (service.metrics), not by operators.
INTERNAL_VARIABLES = frozenset({"TOKENSTORE_METRICS_DIR"})


class SettingsError(ValueError):
    """A ``TOKENSTORE_*`` variable has a value the service cannot use."""


_INT_RE = re.compile(r"-?[0-9]{1,18}")
_FLOAT_RE = re.compile(r"-?([0-9]{1,18}(\.[0-9]*)?|\.[0-9]+)")


def _int_in(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    def parse(raw: str) -> int:
        # Our own check, not int()'s: it would take "1_000", "+5" or Arabic-Indic digits.
        if not _INT_RE.fullmatch(raw) or not low <= int(raw) <= high:
            raise ValueError(f"must be {what} {low}-{high}")
        return int(raw)

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        # Refuses nan, inf and exponents as well as words.
        if not _FLOAT_RE.fullmatch(raw) or not low <= float(raw) <= high:
            raise ValueError(f"must be a number of seconds {low:g}-{high:g} (e.g. 1.5)")
        return float(raw)

    return parse


def _redis_url(raw: str) -> str | None:
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _host(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError("must be an IP address or a host name (0.0.0.0: every interface)")
    return raw


def _key_prefix(raw: str) -> str:
    # Braces would start a Cluster hash tag and break the slot of every key built on the prefix.
    if "{" in raw or "}" in raw or len(raw) > 32:
        raise ValueError("must be at most 32 characters, without { or }")
    return raw


def _optional_path(raw: str) -> str | None:
    return raw or None


def _file_path(raw: str) -> str | None:
    if not raw.isprintable():
        raise ValueError("must be a file path on one line (empty: none)")
    return raw or None


_CLAIM_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _jwks_url(raw: str) -> str | None:
    if raw and (not raw.startswith(("https://", "http://")) or not raw.isprintable()):
        raise ValueError("must be an https:// (or http://) URL (empty: none)")
    return raw or None


def _claim(raw: str) -> str:
    if _CLAIM_RE.fullmatch(raw) is None:
        raise ValueError("must be a claim name (1-64 letters, digits, _ . : -)")
    return raw


def _names(what: str, pattern: re.Pattern[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in raw.split(",")) if raw else ()
        if any(pattern.fullmatch(name) is None for name in names):
            raise ValueError(f"must be {what} separated by commas")
        return names

    return parse


# An issuer is a URL (or some other case-sensitive string): anything printable but a comma.
_ISSUER_RE = re.compile(r"[^\s,]{1,512}")


def _audience(raw: str) -> str | None:
    if raw and _ISSUER_RE.fullmatch(raw) is None:
        raise ValueError("must be one audience, without spaces or commas (empty: none)")
    return raw or None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_name(raw: str) -> str:
    # An HTTP field name (RFC 9110 token): anything else could never match a request header.
    if not 1 <= len(raw) <= 64 or _HEADER_NAME_RE.fullmatch(raw) is None:
        raise ValueError("must be an HTTP header name (1-64 letters, digits, - and the like)")
    return raw


def parse_workers(raw: str) -> int:
    """Worker processes; ``auto`` is 0, which stands for one per CPU (resolved at start)."""
    if raw.lower() == "auto":
        return 0
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 1024:
        raise ValueError("must be auto or a number of processes 0-1024")
    return int(raw)


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError("must be true or false (or 1/0, yes/no, on/off)")
    return value in {"1", "true", "yes", "on"}


def _setting(default: Any, parse: Callable[[str], Any], doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc, "secret": secret})


DAY = 86_400
SECONDS = "a whole number of seconds"
BYTES = "a number of bytes"


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = _setting(
        None,
        _redis_url,
        "Redis URL; a Cluster is detected. Unset: embedded in-memory store.",
        secret=True,
    )
    host: str = _setting("127.0.0.1", _host, "Address to listen on.")
    port: int = _setting(8080, _int_in(1, 65535, "a port number"), "Port to listen on.")
    metrics_port: int = _setting(
        9464,
        _int_in(0, 65535, "a port number, or 0 for none"),
        "Port of the open `/metrics`, served off the event loop. 0: none.",
    )
    default_ttl: int = _setting(
        3600, _int_in(1, 10 * 365 * DAY, SECONDS), "Token lifetime (s) if none given."
    )
    max_ttl: int = _setting(
        30 * DAY, _int_in(1, 10 * 365 * DAY, SECONDS), "Longest token lifetime (s)."
    )
    max_tokens_per_user: int = _setting(
        0,
        _int_in(0, 100_000, "a number of tokens"),
        "Live tokens per user; past it the oldest are revoked. 0: no limit.",
    )
    key_prefix: str = _setting("ts:", _key_prefix, "Prefix of every Redis key.")
    redis_pool_size: int = _setting(
        64, _int_in(1, 10_000, "a number of connections"), "Redis connections per process."
    )
    redis_timeout: float = _setting(
        2.0, _seconds(0.05, 60), "Seconds to wait for Redis (connect, command, free connection)."
    )
    wait_replicas: int = _setting(
        0,
        _int_in(0, 64, "a number of replicas"),
        "Replicas that must confirm a revocation (WAIT) before 2xx. 0: none.",
    )
    wait_timeout: float = _setting(
        0.5, _seconds(0.01, 60), "Seconds a revocation waits for those replicas; then 503."
    )
    read_timeout: float = _setting(
        2.0,
        _seconds(0.01, 60),
        "Seconds a batch of introspection reads waits for a Redis node (on a Cluster, for each "
        "node apart); past it those reads answer 503.",
    )
    allow_evicting_redis: bool = _setting(
        False, _bool, "Serve even if Redis may evict keys (revocations could come undone)."
    )
    max_body_bytes: int = _setting(
        65_536, _int_in(1024, 16 * 1024 * 1024, BYTES), "Largest request body."
    )
    max_metadata_bytes: int = _setting(
        4096, _int_in(2, 65_536, BYTES), "Largest token `metadata` object, as JSON bytes."
    )
    log_level: str = _setting("INFO", _log_level, "Log level.")
    clients_file: str | None = _setting(
        None, _optional_path, "JSON file of API clients; required with a Redis URL."
    )
    authz_header: str = _setting(
        "Authorization", _header_name, "Header `/v1/authz` reads the bearer token from."
    )
    cache_max_age: int = _setting(
        5, _int_in(0, DAY, SECONDS), "Longest `max-age` (s) of a live answer; 0: `no-store`."
    )
    negative_cache_max_age: int = _setting(
        1, _int_in(0, 3600, SECONDS), "`max-age` (s) of an inactive answer; 0: `no-store`."
    )
    feed_heartbeat: float = _setting(
        15.0, _seconds(0.05, 300), "Seconds between heartbeats on `/v1/events`."
    )
    shutdown_timeout: float = _setting(
        20.0, _seconds(0, 3600), "Seconds in-flight requests get to finish after SIGTERM."
    )
    shutdown_delay: float = _setting(
        0.0, _seconds(0, 300), "Seconds between SIGTERM and closing the listener (503 /readyz)."
    )
    workers: int = _setting(
        1, parse_workers, "Processes sharing the port (SO_REUSEPORT). 0 or `auto`: one per CPU."
    )
    log_user_ids: bool = _setting(False, _bool, "Put the user id of the path in request logs.")
    header_timeout: float = _setting(
        10.0, _seconds(0.05, 3600), "Seconds a client has to send a request head, once begun."
    )
    body_timeout: float = _setting(
        10.0, _seconds(0.05, 3600), "Seconds a client has to send a request body (408 past it)."
    )
    keepalive_timeout: float = _setting(
        75.0, _seconds(0.05, 3600), "Seconds an idle connection is kept open."
    )
    max_connections: int = _setting(
        1000,
        _int_in(1, 1_000_000, "a number of connections"),
        "Open connections per process; more get 503 and are closed.",
    )
    console: bool = _setting(
        False, _bool, "Serve the admin console and the self-service page at `/console/`."
    )
    rotation_grace: int = _setting(
        0, _int_in(0, 3600), "Seconds a rotated token's immediate successor may be re-issued."
    )
    idle_resolution: int = _setting(
        60, _int_in(1, 3600), "Most seconds between recorded uses of a token with an idle TTL."
    )
    jwt_jwks_file: str | None = _setting(
        None,
        _file_path,
        "JWKS (JSON Web Key Set) file of the public keys JWTs are verified with; set: "
        "introspection and `/v1/authz` accept JWTs.",
    )
    jwt_jwks_url: str | None = _setting(
        None,
        _jwks_url,
        "URL of the JWKS (instead of a file): fetched at start, every 5 minutes, and on a JWT "
        "naming an unknown `kid` (at most every 10 s).",
    )
    jwt_issuers: tuple[str, ...] = _setting(
        (), _names("issuers", _ISSUER_RE), "Accepted JWT `iss` values, comma-separated."
    )
    jwt_audience: str | None = _setting(
        None, _audience, "The `aud` a JWT must hold (unset: `aud` is not checked)."
    )
    jwt_max_ttl: int = _setting(
        DAY,
        _int_in(60, 10 * 365 * DAY, SECONDS),
        "Longest JWT lifetime (`exp - iat`, s): longer ones are refused; per-user and per-app "
        "JWT cut-offs live this long.",
    )
    jwt_leeway: int = _setting(
        0,
        _int_in(0, 300, SECONDS),
        "Clock leeway (s) when judging a JWT's `exp`, `nbf` and `iat`: for an issuer whose clock "
        "differs from ours.",
    )
    jwt_user_claim: str = _setting("sub", _claim, "JWT claim holding the user id.")
    jwt_app_claims: tuple[str, ...] = _setting(
        ("azp", "client_id", "aud"),
        _names("claim names", _CLAIM_RE),
        "JWT claims holding the app id, the first present wins (`aud`: its first value).",
    )
    webhooks_file: str | None = _setting(
        None, _optional_path, "JSON file of signed webhooks (see Webhooks). Unset: none."
    )
    webhook_retry_for: int = _setting(
        DAY,
        _int_in(1, 30 * DAY, SECONDS),
        "Seconds after an event its webhook delivery is retried; then it is dead-lettered.",
    )
    webhook_backoff: float = _setting(
        1.0,
        _seconds(0.01, 3600),
        "Seconds before a webhook's first retry; doubled each time (with jitter), "
        "at most 30 s (or this, if longer).",
    )
    webhook_timeout: float = _setting(
        10.0, _seconds(0.05, 300), "Seconds a webhook receiver has to answer a POST."
    )
    webhook_lease: float = _setting(
        10.0,
        _seconds(0.5, 600),
        "Seconds a webhook's delivery lease lasts unrenewed: how soon another replica "
        "delivers when the one delivering dies.",
    )

    def __post_init__(self) -> None:
        if self.wait_replicas and self.redis_url is None:
            raise SettingsError(
                f"{env_name('wait_replicas')} needs {env_name('redis_url')}: the embedded "
                "store has no replicas"
            )
        if self.wait_replicas and self.wait_timeout >= self.redis_timeout:
            # WAIT holds its connection that long: the socket timeout would cut it first.
            raise SettingsError(
                f"{env_name('wait_timeout')} ({self.wait_timeout}) must be less than "
                f"{env_name('redis_timeout')} ({self.redis_timeout})"
            )
        if self.metrics_port and self.metrics_port == self.port:
            raise SettingsError(
                f"{env_name('metrics_port')} ({self.metrics_port}) is {env_name('port')}; "
                "use another port, or 0 for none"
            )
        self._check_jwt()
        if self.default_ttl > self.max_ttl:
            raise SettingsError(
                f"{env_name('default_ttl')} ({self.default_ttl}) is greater than "
                f"{env_name('max_ttl')} ({self.max_ttl})"
            )

    def _check_jwt(self) -> None:
        jwks = self.jwt_jwks_file is not None or self.jwt_jwks_url is not None
        if self.jwt_jwks_file is not None and self.jwt_jwks_url is not None:
            raise SettingsError(
                f"set {env_name('jwt_jwks_file')} or {env_name('jwt_jwks_url')}, not both"
            )
        if jwks and not self.jwt_issuers:
            raise SettingsError(
                f"{env_name('jwt_jwks_file')} and {env_name('jwt_jwks_url')} need "
                f"{env_name('jwt_issuers')}: a JWT is accepted only from a named issuer"
            )
        if jwks and self.jwt_max_ttl + 2 * self.jwt_leeway > self.max_ttl:
            # The app watermarks (the per-app JWT cut-offs) and the events a gateway replays
            # are kept only as long as MAX_TTL; a denial may last 2 leeways past a lifetime.
            raise SettingsError(
                f"{env_name('jwt_max_ttl')} ({self.jwt_max_ttl}) plus twice "
                f"{env_name('jwt_leeway')} ({self.jwt_leeway}) is greater than "
                f"{env_name('max_ttl')} ({self.max_ttl})"
            )
        if not self.jwt_app_claims:
            raise SettingsError(f"{env_name('jwt_app_claims')} must name at least one claim")

    @property
    def jwt_enabled(self) -> bool:
        return self.jwt_jwks_file is not None or self.jwt_jwks_url is not None

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
                raise SettingsError(f"{_shown(name, raw, f.metadata['secret'])}: {exc}") from None
        return cls(**values)


def _shown(name: str, raw: str, secret: bool) -> str:
    if secret:
        return f"{name} (value not shown: it may hold a password)"
    if raw and raw.isprintable() and " " not in raw:
        return f"{name}={raw}"
    return f"{name}={raw!r}"


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``TOKENSTORE_*`` variable that is no setting (a typo is otherwise
    silently ignored), with the closest setting's name when there is one."""
    environ = os.environ if environ is None else environ
    known = [f.name.upper() for f in dataclasses.fields(Settings)]
    warnings = []
    for name in sorted(environ):
        suffix = name.removeprefix(ENV_PREFIX)
        if suffix == name or suffix in known or name in INTERNAL_VARIABLES:
            continue
        # Compared without the common prefix, which would make every name look close.
        close = difflib.get_close_matches(suffix.upper(), known, n=1, cutoff=0.7)
        hint = (
            f"; did you mean {ENV_PREFIX}{close[0]}?"
            if close
            else " (see the README's Configuration)"
        )
        warnings.append(f"{name} is not a tokenstore setting and is ignored{hint}")
    return warnings


def documented_settings() -> list[tuple[str, Any, str]]:
    """(variable, default, description) of every setting, for the README table and its test."""
    return [
        (env_name(f.name), _as_written(f.default), f.metadata["doc"])
        for f in dataclasses.fields(Settings)
    ]


def _as_written(default: Any) -> Any:
    """A list setting's default as an operator writes it (comma-separated; empty: unset)."""
    if isinstance(default, tuple):
        return ",".join(default) or None
    return default
