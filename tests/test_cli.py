"""The operator's ``tokenstore`` command, run as a real process: --version, the clients file
commands, healthcheck's reasons, warnings about unknown variables, and a busy port."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
from helpers import client_entry, write_clients
from redis_servers import free_port

from service import __version__
from service.clients import ClientRegistry, Permission
from service.clients_file import load

ROOT = Path(__file__).resolve().parent.parent
TOKENSTORE = [sys.executable, "-m", "service"]


def tokenstore(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSTORE_")}
    return subprocess.run(
        [*TOKENSTORE, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_is_the_package_version() -> None:
    result = tokenstore("--version")
    assert result.returncode == 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert (
        result.stdout.strip() == f"tokenstore {__version__}" == f"tokenstore {project['version']}"
    )


# --- clients ----------------------------------------------------------------------------------


def test_add_list_rotate_remove(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    env = {"TOKENSTORE_CLIENTS_FILE": str(path)}
    gateway = tokenstore("client", "add", "--id", "gateway", "--permissions", "introspect",
                         "--apps", "*", **env)  # fmt: skip
    backend = tokenstore("client", "add", "--id", "web-backend", "--permissions",
                         "issue,read,revoke", "--apps", "web,mobile", **env)  # fmt: skip
    assert gateway.returncode == backend.returncode == 0, gateway.stderr + backend.stderr
    old_secret = gateway.stdout.strip()
    assert old_secret.startswith("tkc_") and old_secret not in gateway.stderr

    listing = tokenstore("client", "list", **env)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows == [
        ["ID", "PERMISSIONS", "APPS"],
        ["gateway", "introspect", "*"],
        ["web-backend", "issue,read,revoke", "mobile,web"],
    ]
    digests = [c["secret_sha256"] for c in json.loads(path.read_text())["clients"]]
    assert not any(d in listing.stdout + listing.stderr for d in digests)

    rotated = tokenstore("client", "rotate", "--id", "gateway", **env)
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip()
    assert new_secret.startswith("tkc_") and new_secret != old_secret
    registry = ClientRegistry(load(path))
    assert registry.find("gateway", old_secret) is None
    client = registry.find("gateway", new_secret)
    assert client is not None and client.permissions == {Permission.INTROSPECT}
    assert client.apps is None  # the rights are kept
    assert registry.find("web-backend", backend.stdout.strip()) is not None

    removed = tokenstore("client", "remove", "--id", "web-backend", **env)
    assert removed.returncode == 0, removed.stderr
    assert [c.id for c in load(path)] == ["gateway"]
    assert [p.name for p in tmp_path.iterdir()] == ["clients.json"]  # no temp file left


@pytest.mark.parametrize("action", ["remove", "rotate"])
def test_an_unknown_id_is_refused_and_the_file_left_alone(tmp_path: Path, action: str) -> None:
    path = write_clients(tmp_path / "c.json", client_entry("gateway", "s", ["read"], ["*"]))
    before = path.read_bytes()
    result = tokenstore("client", action, "--id", "gatewya", "--file", str(path))
    assert (result.returncode, result.stdout) == (1, "")
    assert f"{path}: no client with id 'gatewya' (clients: gateway)" in result.stderr
    assert path.read_bytes() == before


def test_add_refuses_an_existing_id_unless_replace(tmp_path: Path) -> None:
    path = write_clients(tmp_path / "c.json", client_entry("gateway", "old", ["read"], ["*"]))
    before = path.read_bytes()
    args = ["client", "add", "--id", "gateway", "--permissions", "revoke", "--apps", "web"]
    refused = tokenstore(*args, "--file", str(path))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "exists already" in refused.stderr and "client rotate" in refused.stderr
    assert path.read_bytes() == before
    replaced = tokenstore(*args, "--replace", "--file", str(path))
    assert replaced.returncode == 0, replaced.stderr
    [client] = load(path)
    assert client.permissions == {Permission.REVOKE} and client.apps == frozenset({"web"})
    assert ClientRegistry([client]).find("gateway", replaced.stdout.strip()) == client


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the file another owner needs root")
def test_writes_keep_the_mode_owner_and_group(tmp_path: Path) -> None:
    path = write_clients(tmp_path / "c.json", client_entry("gateway", "s", ["read"], ["*"]))
    os.chown(path, 10001, 10002)
    path.chmod(0o640)  # e.g. readable by the container's group
    link = tmp_path / "link.json"
    link.symlink_to(path)
    for args in (["rotate", "--id", "gateway"],
                 ["add", "--id", "x", "--permissions", "read", "--apps", "*"],
                 ["remove", "--id", "x"]):  # fmt: skip
        result = tokenstore("client", *args, "--file", str(link))
        assert result.returncode == 0, result.stderr
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 10001, 10002)
        assert link.is_symlink()  # the file it names was replaced, not the link


# Imports as root, then becomes nobody (whose group is not the file's) before it writes.
AS_NOBODY = """
import os, sys
from service import cli
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_a_write_that_cannot_keep_the_owner_is_refused() -> None:
    with tempfile.TemporaryDirectory() as where:  # not under pytest's 0700 tmp_path
        folder = Path(where)
        folder.chmod(0o777)
        path = write_clients(folder / "c.json", client_entry("gateway", "s", ["read"], ["*"]))
        os.chown(path, 10001, 10001)
        path.chmod(0o666)
        before = path.read_bytes()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSTORE_")}
        result = subprocess.run(
            [sys.executable, "-c", AS_NOBODY, "client", "rotate", "--id", "gateway",
             "--file", str(path)],
            env=clean, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert "cannot keep its owner and group (10001:10001)" in result.stderr
        assert path.read_bytes() == before
        assert [p.name for p in folder.iterdir()] == ["c.json"]


# --- settings and probes ----------------------------------------------------------------------


def test_unknown_variables_are_warned_about_with_a_suggestion(tmp_path: Path) -> None:
    path = write_clients(tmp_path / "c.json", client_entry("gateway", "s", ["read"], ["*"]))
    result = tokenstore("client", "list", "--file", str(path),
                        TOKENSTORE_PROT="9000", TOKENSTORE_WHATEVER="1",
                        TOKENSTORE_METRICS_DIR=str(tmp_path))  # fmt: skip
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "tokenstore: warning: TOKENSTORE_PROT is not a tokenstore setting and is ignored; "
        "did you mean TOKENSTORE_PORT?",
        "tokenstore: warning: TOKENSTORE_WHATEVER is not a tokenstore setting and is ignored "
        "(see the README's Configuration)",
    ]


def test_a_bad_setting_is_exit_code_2_in_our_words() -> None:
    result = tokenstore("serve", TOKENSTORE_PORT="abc")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tokenstore: configuration error: TOKENSTORE_PORT=abc: must be a port number 1-65535"
    )


def test_healthcheck_says_why_it_fails() -> None:
    port = free_port()
    down = tokenstore("healthcheck", TOKENSTORE_PORT=str(port))
    assert down.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz" in down.stderr
    assert "Connection refused" in down.stderr
    bad = tokenstore("healthcheck", TOKENSTORE_PORT="http")
    assert bad.returncode == 1  # never 2: Docker's HEALTHCHECK reserves it
    assert "TOKENSTORE_PORT=http: must be a port number" in bad.stderr


# --- serve: the quick-start secret only once the port is ours ---------------------------------


def test_a_busy_port_fails_without_printing_a_secret() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = tokenstore("serve", TOKENSTORE_PORT=str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "tkc_" not in result.stdout + result.stderr
    assert "quick start" not in result.stderr


def test_the_quick_start_secret_is_printed_once_the_port_is_bound() -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSTORE_")}
    proc = subprocess.Popen(
        [*TOKENSTORE, "serve"],
        env={**clean, "TOKENSTORE_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "the service stopped without printing the secret"
            if "secret:" in line:
                break
        # At once: the port accepts connections when the secret shows.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
