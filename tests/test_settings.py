"""Settings from the environment, and the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, documented_settings

README = Path(__file__).parent.parent / "README.md"


def test_defaults_and_overrides() -> None:
    settings = Settings.from_env({"TOKENSTORE_PORT": "9000", "TOKENSTORE_MAX_TTL": "60",
                                  "TOKENSTORE_DEFAULT_TTL": "30"})  # fmt: skip
    assert (settings.port, settings.max_ttl, settings.default_ttl) == (9000, 60, 30)
    assert settings.host == "127.0.0.1"
    assert Settings.from_env({}).redis_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKENSTORE_PORT", "eighty"),
        ("TOKENSTORE_PORT", "70000"),
        ("TOKENSTORE_DEFAULT_TTL", "0"),
        ("TOKENSTORE_MAX_TOKENS_PER_USER", "-1"),
        ("TOKENSTORE_REDIS_URL", "http://localhost"),
        ("TOKENSTORE_KEY_PREFIX", "a{b}"),
        ("TOKENSTORE_LOG_LEVEL", "LOUD"),
        ("TOKENSTORE_REDIS_TIMEOUT", "nan"),
        ("TOKENSTORE_AUTHZ_HEADER", "X Token"),
        ("TOKENSTORE_AUTHZ_HEADER", ""),
        ("TOKENSTORE_CACHE_MAX_AGE", "-1"),
        ("TOKENSTORE_NEGATIVE_CACHE_MAX_AGE", "1h"),
        ("TOKENSTORE_FEED_HEARTBEAT", "0"),
        ("TOKENSTORE_HEADER_TIMEOUT", "0"),
        ("TOKENSTORE_BODY_TIMEOUT", "-1"),
        ("TOKENSTORE_KEEPALIVE_TIMEOUT", "forever"),
        ("TOKENSTORE_MAX_CONNECTIONS", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


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
