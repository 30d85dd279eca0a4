"""The shutdown, worker and log settings, and how ``tokenstore serve`` picks its worker count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiohttp import web
from helpers import client_entry, write_clients

from service import cli, runner, workers
from service.settings import Settings, SettingsError


def test_defaults_match_the_deployment() -> None:
    s = Settings()
    assert (s.shutdown_timeout, s.shutdown_delay, s.workers, s.log_user_ids) == (20, 0, 1, False)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOKENSTORE_WORKERS": "auto"}, {"workers": 0}),
        ({"TOKENSTORE_WORKERS": "4"}, {"workers": 4}),
        ({"TOKENSTORE_SHUTDOWN_TIMEOUT": "2.5"}, {"shutdown_timeout": 2.5}),
        ({"TOKENSTORE_SHUTDOWN_DELAY": "5"}, {"shutdown_delay": 5}),
        ({"TOKENSTORE_LOG_USER_IDS": "true"}, {"log_user_ids": True}),
        ({"TOKENSTORE_LOG_USER_IDS": "0"}, {"log_user_ids": False}),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: dict[str, object]) -> None:
    s = Settings.from_env(env)
    assert {name: getattr(s, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("TOKENSTORE_WORKERS", "-1"),
        ("TOKENSTORE_WORKERS", "many"),
        ("TOKENSTORE_SHUTDOWN_TIMEOUT", "-1"),
        ("TOKENSTORE_SHUTDOWN_DELAY", "soon"),
        ("TOKENSTORE_LOG_USER_IDS", "maybe"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_zero_workers_means_one_per_cpu() -> None:
    assert workers.resolve(0) == len(os.sched_getaffinity(0))
    assert workers.resolve(3) == 3


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """How many processes ``tokenstore serve`` would have started (nothing is started), with a
    Redis URL (never connected to) and a clients file, as several workers need."""
    calls: list[int] = []

    def run(app: web.Application, settings: Settings, **_: object) -> int:
        calls.append(1)
        return 0

    def supervise(settings: Settings, count: int) -> int:
        calls.append(count)
        return 0

    monkeypatch.setattr(cli, "configure", lambda level: None)
    monkeypatch.setattr(runner, "run", run)
    monkeypatch.setattr(workers, "supervise", supervise)
    for name in list(os.environ):
        if name.startswith("TOKENSTORE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOKENSTORE_REDIS_URL", "redis://127.0.0.1:1/0")
    clients = write_clients(
        tmp_path / "clients.json", client_entry("a", "s" * 20, ["admin"], ["*"])
    )
    monkeypatch.setenv("TOKENSTORE_CLIENTS_FILE", str(clients))
    return calls


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        (None, [], 1),
        ("3", [], 3),
        ("3", ["--workers", "2"], 2),  # the flag wins
        ("3", ["--workers", "1"], 1),
        (None, ["--workers", "auto"], len(os.sched_getaffinity(0))),
    ],
)
def test_the_workers_flag_wins_over_the_setting(
    started: list[int],
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    argv: list[str],
    expected: int,
) -> None:
    if env is not None:
        monkeypatch.setenv("TOKENSTORE_WORKERS", env)
    assert cli.main(["serve", *argv]) == 0
    assert started == [expected]


def test_several_workers_need_redis(
    started: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOKENSTORE_REDIS_URL")
    assert cli.main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "embedded store lives in one process" in err
    assert "TOKENSTORE_REDIS_URL" in err
    assert "secret" not in err  # refused before the quick-start client is made
    assert started == []
    assert cli.main(["serve", "--workers", "1"]) == 0
    assert started == [1]


def test_a_bad_workers_flag_is_a_usage_error(
    started: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--workers", "lots"])
    assert exit_.value.code == 2
    assert "--workers: must be auto or a number" in capsys.readouterr().err
    assert started == []
