"""What gets installed where: requirements/*.txt lock pyproject.toml's runtime dependencies
with hashes (the image installs exactly them: tests/test_image.py), the embedded store is an
extra, and a process without it and without a Redis URL says what to do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version
from redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def locked(name: str) -> dict[str, tuple[Version, list[str]]]:
    """A lock file's pins: name -> (version, hashes)."""
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for entry in re.split(r"\n(?=[a-z0-9])", text, flags=re.IGNORECASE):
        if entry.startswith("#"):
            continue
        head = entry.split("\\", 1)[0].strip()
        requirement = Requirement(head)
        (spec,) = requirement.specifier
        assert spec.operator == "==", entry
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
        pins[canonical(requirement.name)] = (Version(spec.version), hashes)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_dependency_is_locked_within_its_range_with_hashes() -> None:
    pins = locked("runtime.txt")
    assert pins and all(hashes for _, hashes in pins.values())
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        version, _ = pins[canonical(requirement.name)]
        assert requirement.specifier.contains(version), (line, version)
        for extra in requirement.extras:  # redis[hiredis]
            assert extra in pins, f"{line}: its extra {extra} is not locked"


def test_the_quick_start_store_stays_out_of_the_runtime_lock() -> None:
    assert not {"fakeredis", "lupa", "pip", "setuptools"} & set(locked("runtime.txt"))
    embedded = [
        Requirement(r).name for r in PYPROJECT["project"]["optional-dependencies"]["embedded"]
    ]
    assert embedded == ["fakeredis"]


def test_the_build_stage_tools_are_locked_and_fit_the_build_system() -> None:
    pins = locked("build.txt")
    assert set(pins) == {"pip", "setuptools"} and all(hashes for _, hashes in pins.values())
    (backend,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    assert backend.specifier.contains(pins["setuptools"][0])


def test_lock_files_say_how_to_refresh_them() -> None:
    for name in ("runtime.txt", "build.txt"):
        head = (ROOT / "requirements" / name).read_text(encoding="utf-8").splitlines()[:3]
        assert "#    scripts/lock" in head


def test_without_the_embedded_store_or_a_redis_url_serve_says_what_to_do() -> None:
    """As in the image: fakeredis is not installed (hidden here), no TOKENSTORE_REDIS_URL."""
    hide_it = (
        "import sys; sys.modules['fakeredis'] = None; from service.cli import main; "
        "raise SystemExit(main(['serve']))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSTORE_")}
    env["TOKENSTORE_PORT"] = str(free_port())
    done = subprocess.run(
        [sys.executable, "-c", hide_it], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "TOKENSTORE_REDIS_URL is not set" in done.stderr
    assert "tokenstore[embedded]" in done.stderr
    assert "Traceback" not in done.stderr and "tkc_" not in done.stderr  # no quick-start secret
