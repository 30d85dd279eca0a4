"""The webhooks file: strict parsing, errors naming the file and the entry, secret files
other users cannot read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_cli import tokenstore
from webhook_receivers import SECRET, write_webhooks

from service.events import EventKind
from service.webhooks.config import Format, WebhooksError, load, parse


def _entry(tmp_path: Path, **fields: Any) -> str:
    secret = tmp_path / "s"
    if not secret.exists():
        secret.write_text(SECRET)
        os.chmod(secret, 0o600)
    entry = {
        "id": "hook", "url": "https://receiver.example/hook", "secret_file": str(secret),
        "events": ["user", "app"], "apps": ["web"], "format": "fusionauth", **fields,
    }  # fmt: skip
    return json.dumps({"webhooks": [entry]})


def test_a_valid_file(tmp_path: Path) -> None:
    [hook] = load(write_webhooks(tmp_path, {"id": "a.b-c", "url": "http://127.0.0.1:1/x"}))
    assert (hook.id, hook.url, hook.secret, hook.format) == (
        "a.b-c", "http://127.0.0.1:1/x", SECRET, Format.STANDARD)  # fmt: skip
    assert hook.events == frozenset(EventKind) and hook.apps is None
    assert SECRET not in repr(hook)
    [other] = parse(_entry(tmp_path), "f.json")
    assert other.apps == frozenset({"web"}) and other.format is Format.FUSIONAUTH
    assert other.events == frozenset({EventKind.USER, EventKind.APP})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"id": "-x"}, "id: expected 1-64 characters"),
        ({"url": "ftp://host/x"}, "url: expected an http:// or https:// URL"),
        ({"url": "http:///x"}, "url: expected"),
        ({"url": "https://user@host/x"}, "url: expected"),
        ({"events": ["token", "everything"]}, "events: unknown ['everything']"),
        ({"events": []}, "events: expected a non-empty array"),
        ({"apps": ["*", "web"]}, 'apps: "*" (every app) cannot be combined'),
        ({"format": "xml"}, "format: expected one of ['standard', 'fusionauth']"),
        ({"secret_file": "/nonexistent/s"}, "secret_file: cannot read /nonexistent/s"),
        ({"extra": 1}, "unknown fields ['extra']"),
    ],
)
def test_mistakes_name_the_file_and_the_entry(
    tmp_path: Path, fields: dict[str, Any], expected: str
) -> None:
    with pytest.raises(WebhooksError) as caught:
        parse(_entry(tmp_path, **fields), "hooks.json")
    assert str(caught.value).startswith("hooks.json: webhooks[0]")
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        (SECRET, 0o644, "other users may read it"),
        ("c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0", 0o600, "must hold whsec_"),
        ("whsec_c2hvcnQ=", 0o600, "at least 24 random bytes"),
        ("whsec_not base64!", 0o600, "must hold whsec_"),
    ],
)
def test_bad_secret_files(tmp_path: Path, content: str, mode: int, expected: str) -> None:
    secret = tmp_path / "bad.secret"
    secret.write_text(content)
    os.chmod(secret, mode)
    with pytest.raises(WebhooksError, match=expected) as caught:
        parse(_entry(tmp_path, secret_file=str(secret)), "hooks.json")
    assert content not in str(caught.value)  # never echoed


def test_the_document_shape_and_unique_ids(tmp_path: Path) -> None:
    for text in ("[]", '{"webhooks": {}}', '{"webhooks": [], "x": 1}', "{"):
        with pytest.raises(WebhooksError, match=r"^f\.json: "):
            parse(text, "f.json")
    entry = json.loads(_entry(tmp_path))["webhooks"][0]
    with pytest.raises(WebhooksError, match=r"webhooks\[1\]: id 'hook' is used twice"):
        parse(json.dumps({"webhooks": [entry, entry]}), "f.json")


def test_serve_refuses_a_bad_webhooks_file_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "hooks.json"
    bad.write_text('{"webhooks": [{"id": "x"}]}')
    result = tokenstore("serve", TOKENSTORE_WEBHOOKS_FILE=str(bad), TOKENSTORE_PORT="1")
    assert result.returncode == 2, result.stderr
    assert f"configuration error: {bad}: webhooks[0] (id 'x'): missing fields" in result.stderr
