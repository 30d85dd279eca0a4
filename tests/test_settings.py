"""Settings from the environment, and the README's configuration table listing every one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, documented_settings

README = Path(__file__).resolve().parent.parent / "README.md"


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


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="TOKENSTORE_PORT has value 'x'"):
        Settings.from_env({"TOKENSTORE_PORT": "x"})


def test_clients_file_is_optional() -> None:
    assert Settings.from_env({}).clients_file is None
    assert Settings.from_env({"TOKENSTORE_CLIENTS_FILE": ""}).clients_file is None
    path = "/etc/tokenstore/clients.json"
    assert Settings.from_env({"TOKENSTORE_CLIENTS_FILE": path}).clients_file == path
