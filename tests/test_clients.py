"""The clients file: strict parsing, lookups by id and by secret, the CLI that writes it, and
what start-up does without one."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import client_entry, write_clients

from service import cli, clients_file
from service.clients import ApiClient, ClientRegistry, Permission, hash_secret
from service.clients_file import ClientsError, for_settings, load, parse
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GOOD = client_entry("gateway", "s3cret", ["introspect"], ["*"])


def test_the_shipped_example_loads() -> None:
    [client] = load(ROOT / "deploy" / "examples" / "clients.json")
    assert client.id == "gateway"
    assert client.permissions == {Permission.INTROSPECT}
    assert client.apps is None
    assert ClientRegistry([client]).find(None, "") is None  # the placeholder matches nothing


def test_a_full_entry() -> None:
    entry = client_entry("app-1.web_x", "s", ["issue", "read", "revoke"], ["web", "mobile"])
    [client] = parse(json.dumps({"clients": [entry]}), "f.json")
    assert client.permissions == {Permission.ISSUE, Permission.READ, Permission.REVOKE}
    assert client.apps == frozenset({"web", "mobile"})
    assert client.may(Permission.READ) and not client.may(Permission.INTROSPECT)


def test_admin_implies_every_permission() -> None:
    admin = ApiClient("a", hash_secret("x"), frozenset({Permission.ADMIN}), None)
    assert all(admin.may(p) for p in Permission)


def _with(**changes: Any) -> str:
    return json.dumps({"clients": [{**GOOD, **changes}]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[]", 'expected an object {"clients": [...]}'),
        ('{"clients": [], "extra": 1}', "and nothing else"),
        ('{"clients": {}}', "and nothing else"),
        ('{"clients": ["x"]}', "clients[0]: expected an object"),
        (_with(id="bad id"), "clients[0] (id 'bad id'): id: expected"),
        (_with(id=""), "id: expected"),
        (_with(id="a:b"), "id: expected"),
        (_with(id="self"), "'self' is reserved"),
        (_with(id=7), "clients[0]: id: expected"),
        (_with(secret_sha256="abc"), "(id 'gateway'): secret_sha256: expected 64 hexadecimal"),
        (_with(secret_sha256="g" * 64), "secret_sha256"),
        (_with(permissions=[]), "permissions: expected a non-empty array"),
        (_with(permissions="admin"), "permissions: expected a non-empty array"),
        (_with(permissions=["root"]), "permissions: unknown ['root']"),
        (_with(apps=[]), "apps: expected a non-empty array"),
        (_with(apps=["*", "web"]), "cannot be combined"),
        (_with(apps=[""]), "app ids are 1 to 256"),
        (_with(secret="x"), "unknown fields ['secret']"),
        (json.dumps({"clients": [{"id": "gateway"}]}), "missing fields ['secret_sha256'"),
    ],
)
def test_mistakes_name_the_file_and_the_entry(text: str, expected: str) -> None:
    with pytest.raises(ClientsError) as error:
        parse(text, "/etc/ts/clients.json")
    assert str(error.value).startswith("/etc/ts/clients.json: ")
    assert expected in str(error.value)


def test_ids_and_secrets_must_be_unique() -> None:
    twice = json.dumps({"clients": [GOOD, GOOD]})
    with pytest.raises(ClientsError, match=r"clients\[1\]: id 'gateway' is used twice"):
        parse(twice, "f")
    shared = json.dumps({"clients": [GOOD, {**GOOD, "id": "other"}]})
    with pytest.raises(ClientsError, match="same secret_sha256 as client 'gateway'"):
        parse(shared, "f")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClientsError, match=f"{tmp_path}/missing.json: cannot read"):
        load(tmp_path / "missing.json")


def test_registry_finds_by_id_and_by_secret_only_with_the_right_secret() -> None:
    registry = ClientRegistry(parse(json.dumps({"clients": [GOOD]}), "f"))
    gateway = registry.find("gateway", "s3cret")
    assert gateway is not None and gateway.id == "gateway"
    assert registry.find(None, "s3cret") is gateway
    assert registry.find("gateway", "wrong") is None
    assert registry.find("nobody", "s3cret") is None
    assert registry.find(None, "wrong") is None
    assert "s3cret" not in repr(gateway) and hash_secret("s3cret").hex() not in repr(gateway)


def test_start_up_refuses_redis_without_a_clients_file() -> None:
    with pytest.raises(ClientsError, match="TOKENSTORE_CLIENTS_FILE is not set"):
        for_settings(Settings(redis_url="redis://127.0.0.1:1/0"))


def test_quick_start_announces_one_working_admin_secret() -> None:
    said: list[str] = []
    registry = for_settings(Settings(), said.append)
    [text] = said
    secret = next(line.split()[-1] for line in text.splitlines() if "secret:" in line)
    admin = registry.find(None, secret)
    assert admin is not None and admin.may(Permission.ADMIN) and admin.apps is None
    assert len(registry) == 1


# --- the CLI ------------------------------------------------------------------------------


def _add(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["client", "add", *args])
    out, err = capsys.readouterr()
    return code, out.strip(), err


def test_client_add_creates_the_file_with_hashes_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.json"
    code, secret, err = _add(
        capsys, "--id", "gateway", "--permissions", "introspect,read", "--apps", "*",
        "--file", str(path),
    )  # fmt: skip
    assert code == 0
    assert secret.startswith("tkc_") and len(secret) >= 40
    assert "gateway" in err and secret not in err
    text = path.read_text()
    assert secret not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [client] = load(path)
    assert ClientRegistry([client]).find("gateway", secret) == client
    assert client.permissions == {Permission.INTROSPECT, Permission.READ}
    assert [p.name for p in tmp_path.iterdir()] == ["clients.json"]  # no temp file left


def test_client_add_replace_renews_an_entry_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_clients(
        tmp_path / "c.json",
        client_entry("gateway", "old", ["introspect"], ["*"]),
        client_entry("backoffice", "bo", ["admin"], ["web"]),
    )
    path.chmod(0o644)
    monkeypatch.setenv("TOKENSTORE_CLIENTS_FILE", str(path))
    code, secret, _ = _add(
        capsys, "--id", "gateway", "--permissions", "revoke", "--apps", "a,b", "--replace"
    )
    assert code == 0
    registry = ClientRegistry(load(path))
    assert registry.find("gateway", "old") is None
    gateway = registry.find("gateway", secret)
    assert gateway is not None and gateway.apps == frozenset({"a", "b"})
    assert registry.find("backoffice", "bo") is not None
    assert [c["id"] for c in json.loads(path.read_text())["clients"]] == ["gateway", "backoffice"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # an existing file keeps its mode


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--id", "x y", "--permissions", "read", "--apps", "*"], "id: expected"),
        (["--id", "x", "--permissions", "root", "--apps", "*"], "unknown ['root']"),
        (["--id", "x", "--permissions", "read", "--apps", ""], "apps: expected"),
    ],
)
def test_client_add_refuses_bad_input_and_leaves_the_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    path = write_clients(tmp_path / "c.json", GOOD)
    before = path.read_bytes()
    code, out, err = _add(capsys, *args, "--file", str(path))
    assert (code, out) == (2, "")
    assert expected in err
    assert path.read_bytes() == before


def test_client_add_refuses_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.json"
    path.write_text("{oops")
    code, out, err = _add(capsys, "--id", "x", "--permissions", "read", "--apps", "*",
                          "--file", str(path))  # fmt: skip
    assert (code, out) == (2, "")
    assert f"{path}: not valid JSON" in err
    assert path.read_text() == "{oops"


def test_client_add_needs_a_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENSTORE_CLIENTS_FILE", raising=False)
    code, _, err = _add(capsys, "--id", "x", "--permissions", "read", "--apps", "*")
    assert code == 2
    assert "pass --file PATH or set TOKENSTORE_CLIENTS_FILE" in err


def test_serve_refuses_redis_without_clients_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENSTORE_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("TOKENSTORE_CLIENTS_FILE", raising=False)
    assert cli.main(["serve"]) == 2
    assert "TOKENSTORE_CLIENTS_FILE is not set" in capsys.readouterr().err


def test_serve_refuses_an_invalid_clients_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_clients(tmp_path / "c.json", {**GOOD, "permissions": ["everything"]})
    monkeypatch.setenv("TOKENSTORE_CLIENTS_FILE", str(path))
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: clients[0] (id 'gateway'): permissions: unknown" in err


def test_add_client_module_api_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    secret = clients_file.add_client(path, "svc", ["issue"], ["web"])
    replaced = os.stat(path).st_ino
    clients_file.add_client(path, "svc2", ["read"], ["*"])
    assert os.stat(path).st_ino != replaced  # a new file renamed over the old one
    assert ClientRegistry(load(path)).find("svc", secret) is not None
