"""The console's static files: off by default, served with strict security headers and no
credentials when on, nothing outside service/console/ reachable, and no unsafe construct in
the files themselves (inline script or style, HTML parsing of data, browser storage)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ADMIN_HEADERS

from service.api.console import CONSOLE_DIR, CSP, load_files
from service.app import create_app
from service.clients import ClientRegistry
from service.settings import Settings

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CONSOLE_FILES = sorted(
    p.relative_to(CONSOLE_DIR).as_posix() for p in CONSOLE_DIR.rglob("*") if p.is_file()
)


async def _client(aiohttp_client: Any, console: bool) -> TestClient[Any, Any]:
    app = create_app(Settings(console=console), ClientRegistry([]))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_the_console_is_off_by_default(aiohttp_client: Any) -> None:
    client = await _client(aiohttp_client, console=False)
    for path in ("/console", "/console/", "/console/me", "/console/js/api.js"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 404, path


@pytest.mark.parametrize("path", ["", "me", *CONSOLE_FILES])
async def test_every_file_is_served_open_with_the_security_headers(
    aiohttp_client: Any, path: str
) -> None:
    client = await _client(aiohttp_client, console=True)
    response = await client.get(f"/console/{path}")  # no Authorization header
    assert response.status == 200
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    name = {"": "index.html", "me": "me.html"}.get(path, path)
    assert await response.read() == (CONSOLE_DIR / name).read_bytes()
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    kinds[".svg"] = "image/svg+xml"
    assert response.content_type == kinds[Path(name).suffix]


async def test_console_redirects_to_its_directory_and_credentials_change_nothing(
    aiohttp_client: Any,
) -> None:
    client = await _client(aiohttp_client, console=True)
    response = await client.get("/console", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/console/")
    assert response.headers["X-Frame-Options"] == "DENY"
    with_credentials = await client.get("/console/", headers=ADMIN_HEADERS)
    assert with_credentials.status == 200


def test_the_csp_forbids_inline_code_framing_and_form_posts() -> None:
    directives = dict(d.split(" ", 1) for d in CSP.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == directives["style-src"] == "'self'"  # no 'unsafe-inline'
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert directives["object-src"] == directives["base-uri"] == "'none'"


TRAVERSALS = [
    "/console/../service/settings.py",
    "/console/../../etc/passwd",
    "/console/js/../../api/console.py",
    "/console/%2e%2e/api/console.py",
    "/console/%2E%2E%2Fapi%2Fconsole.py",
    "/console/..%2f..%2fetc%2fpasswd",
    "/console/js/%2e%2e/%2e%2e/settings.py",
    "/console//etc/passwd",
    "/console/%2Fetc%2Fpasswd",
    "/console/./index.html",
    "/console/js/./api.js",
    "/console/js/views/../../../app.py",
    "/console/index.html%00.js",
    "/console/..\\..\\settings.py",
    "/console/%5c..%5csettings.py",
    "/console/js",
    "/console/js/",
]


async def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A GET of ``target`` exactly as written: no client library normalises the dots away."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_no_path_reaches_outside_the_console_directory(
    aiohttp_client: Any, target: str
) -> None:
    client = await _client(aiohttp_client, console=True)
    assert client.port is not None
    status, body = await _raw_get(client.port, target)
    assert status in (400, 404), (target, status)
    assert b"import" not in body and b"root:" not in body  # no Python source, no passwd


def test_only_regular_files_of_known_types_are_loaded(tmp_path: Path) -> None:
    outside = tmp_path / "secret.js"
    outside.write_text("secret")
    root = tmp_path / "console"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("i")
    (root / "me.html").write_text("m")
    (root / "js" / "a.js").write_text("a")
    (root / "notes.txt").write_text("n")
    (root / "py.py").write_text("p")
    (root / "js" / "link.js").symlink_to(outside)
    files = load_files(root)
    assert sorted(files) == ["", "index.html", "js/a.js", "me", "me.html"]
    assert files[""].body == b"i"


HTML_FILES = [CONSOLE_DIR / name for name in CONSOLE_FILES if name.endswith(".html")]
JS_FILES = [CONSOLE_DIR / name for name in CONSOLE_FILES if name.endswith(".js")]


@pytest.mark.parametrize("page", HTML_FILES, ids=lambda p: p.name)
def test_pages_have_no_inline_script_or_style(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son\w+\s*=", html) is None  # no inline event handlers
    for script in re.findall(r"<script[^>]*>", html):
        assert re.search(r'\ssrc="/console/js/\w+\.js"', script), script
        assert 'type="module"' in script


@pytest.mark.parametrize("source", JS_FILES, ids=lambda p: p.relative_to(CONSOLE_DIR).as_posix())
def test_scripts_never_parse_data_as_html_nor_store_credentials(source: Path) -> None:
    js = re.sub(r"^\s*//.*$", "", source.read_text(encoding="utf-8"), flags=re.MULTILINE)
    for unsafe in (
        "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
        "new Function", "localStorage", "sessionStorage", "document.cookie", "indexedDB",
    ):  # fmt: skip
        assert unsafe not in js, unsafe
