"""``bench/soak.py`` for a few seconds, so that it cannot rot: it runs, restarts Redis under
load, and finds nothing wrong (its exit code says so)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_soak_runs_briefly_and_finds_nothing_wrong() -> None:
    args = ["--minutes", "0.1", "--interval", "2", "--outage", "0.3", "--tokens", "200"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "wrong answers: 0" in out
    assert "unexpected statuses (500s included): 0; client errors: {}" in out
    assert "Redis killed at" in out
    rows = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert len(rows) >= 3
    assert sum(int(row.split("|")[4]) for row in rows) > 0  # the restart was seen: 503s
