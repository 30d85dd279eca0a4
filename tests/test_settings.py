"""Settings from the environment, and the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, documented_settings, unknown_variables

README = Path(__file__).parent.parent / "README.md"


def test_defaults_and_overrides() -> None:
    settings = Settings.from_env({"TOKENSTORE_PORT": "9000", "TOKENSTORE_MAX_TTL": "60",
                                  "TOKENSTORE_DEFAULT_TTL": "30"})  # fmt: skip
    assert (settings.port, settings.max_ttl, settings.default_ttl) == (9000, 60, 30)
    assert settings.host == "127.0.0.1"
    assert Settings.from_env({}).redis_url is None


# At least one bad value of every setting (a test below keeps this list complete).
BAD_VALUES = [
    ("TOKENSTORE_REDIS_URL", "http://localhost"),
    ("TOKENSTORE_HOST", "my host"),
    ("TOKENSTORE_PORT", "eighty"),
    ("TOKENSTORE_PORT", "70000"),
    ("TOKENSTORE_PORT", "8_080"),
    ("TOKENSTORE_DEFAULT_TTL", "0"),
    ("TOKENSTORE_MAX_TTL", "1h"),
    ("TOKENSTORE_MAX_TOKENS_PER_USER", "-1"),
    ("TOKENSTORE_KEY_PREFIX", "a{b}"),
    ("TOKENSTORE_REDIS_POOL_SIZE", "0"),
    ("TOKENSTORE_REDIS_TIMEOUT", "nan"),
    ("TOKENSTORE_ALLOW_EVICTING_REDIS", "maybe"),
    ("TOKENSTORE_MAX_BODY_BYTES", "1e6"),
    ("TOKENSTORE_MAX_METADATA_BYTES", "1"),
    ("TOKENSTORE_LOG_LEVEL", "LOUD"),
    ("TOKENSTORE_AUTHZ_HEADER", "X Token"),
    ("TOKENSTORE_AUTHZ_HEADER", ""),
    ("TOKENSTORE_CACHE_MAX_AGE", "-1"),
    ("TOKENSTORE_NEGATIVE_CACHE_MAX_AGE", "1h"),
    ("TOKENSTORE_FEED_HEARTBEAT", "0"),
    ("TOKENSTORE_SHUTDOWN_TIMEOUT", "inf"),
    ("TOKENSTORE_SHUTDOWN_DELAY", "-1"),
    ("TOKENSTORE_WORKERS", "many"),
    ("TOKENSTORE_LOG_USER_IDS", "2"),
    ("TOKENSTORE_HEADER_TIMEOUT", "0"),
    ("TOKENSTORE_BODY_TIMEOUT", "-1"),
    ("TOKENSTORE_KEEPALIVE_TIMEOUT", "forever"),
    ("TOKENSTORE_MAX_CONNECTIONS", "0"),
    ("TOKENSTORE_CONSOLE", "on please"),
    ("TOKENSTORE_METRICS_PORT", "-1"),
    ("TOKENSTORE_WAIT_REPLICAS", "65"),
    ("TOKENSTORE_WAIT_TIMEOUT", "soon"),
    ("TOKENSTORE_ROTATION_GRACE", "3601"),
    ("TOKENSTORE_IDLE_RESOLUTION", "0"),
    ("TOKENSTORE_READ_TIMEOUT", "0"),
    ("TOKENSTORE_JWT_JWKS_FILE", "keys\n.json"),
    ("TOKENSTORE_JWT_JWKS_URL", "ftp://idp.example/jwks.json"),
    ("TOKENSTORE_JWT_ISSUERS", "https://a.example,,https://b.example"),
    ("TOKENSTORE_JWT_AUDIENCE", "api one"),
    ("TOKENSTORE_JWT_MAX_TTL", "59"),
    ("TOKENSTORE_JWT_LEEWAY", "301"),
    ("TOKENSTORE_JWT_USER_CLAIM", "user id"),
    ("TOKENSTORE_JWT_APP_CLAIMS", "azp, client id"),
    ("TOKENSTORE_WEBHOOK_RETRY_FOR", "1d"),
    ("TOKENSTORE_WEBHOOK_RETRY_FOR", "0"),
    ("TOKENSTORE_WEBHOOK_BACKOFF", "0"),
    ("TOKENSTORE_WEBHOOK_TIMEOUT", "nan"),
    ("TOKENSTORE_WEBHOOK_LEASE", "0.1"),
    ("TOKENSTORE_WEBHOOK_LEASE", "10m"),
]
# Settings whose every value is valid: an empty clients file is "unset".
ANY_VALUE = {"TOKENSTORE_CLIENTS_FILE", "TOKENSTORE_WEBHOOKS_FILE"}


def test_every_setting_has_a_bad_value_case() -> None:
    names = {name for name, _, _ in documented_settings()}
    assert {name for name, _ in BAD_VALUES} | ANY_VALUE == names


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_values_name_the_variable_in_our_words(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    shown = f"{name} (value not shown" if name == "TOKENSTORE_REDIS_URL" else f"{name}="
    assert message.startswith(shown)
    assert ": must be " in message
    # Not Python's own words (int(), float(), enum lookups).
    assert not any(word in message for word in ("literal", "convert", "base 10", "Error"))


def test_the_redis_url_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"TOKENSTORE_REDIS_URL": "http://:hunter2@redis:6379"})
    assert "hunter2" not in str(caught.value)


def test_unknown_variables() -> None:
    environ = {"TOKENSTORE_LOGLEVEL": "debug", "TOKENSTORE_PORT": "1", "OTHER": "1",
               "TOKENSTORE_METRICS_DIR": "/x", "TOKENSTORE_ZZZ": ""}  # fmt: skip
    assert unknown_variables(environ) == [
        "TOKENSTORE_LOGLEVEL is not a tokenstore setting and is ignored; "
        "did you mean TOKENSTORE_LOG_LEVEL?",
        "TOKENSTORE_ZZZ is not a tokenstore setting and is ignored "
        "(see the README's Configuration)",
    ]


def test_default_ttl_above_max_is_refused() -> None:
    with pytest.raises(SettingsError, match="TOKENSTORE_DEFAULT_TTL"):
        Settings.from_env({"TOKENSTORE_DEFAULT_TTL": "100", "TOKENSTORE_MAX_TTL": "10"})


def _readme_table() -> dict[str, str]:
    """variable -> default column of the README's "Configuration" table."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(TOKENSTORE_[A-Z_]+)` \| ([^|]*) \|", section, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_the_readme_lists_every_setting_with_its_default() -> None:
    table = _readme_table()
    assert sorted(table) == sorted(name for name, _, _ in documented_settings())
    for name, default, _ in documented_settings():
        shown = "(unset)" if default is None else f"`{default}`"
        assert table[name] == shown, name
