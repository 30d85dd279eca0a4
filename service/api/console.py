"""The admin console and the "your devices" page: static files under ``/console/``, served
only with ``TOKENSTORE_CONSOLE`` on.

The files are a shell without data: every datum comes from the API, called by the page with
the credentials typed into it (``Authorization`` header, held in the tab's memory), so the
files themselves are served without credentials, like the probes. They are read once, when the
app is built, into a table keyed by their path under ``service/console/``: a request names a
key of that table or gets a 404, so no path can reach a file outside the directory.

Every answer carries a strict Content-Security-Policy (scripts, styles and connections from
this origin only; no inline script or style; no framing; no form submission), plus the
clickjacking, sniffing and referrer headers.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from aiohttp import web

from service.api.routing import Dialect, Route
from service.auth import OPEN
from service.errors import NotFound

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # module scripts need a JavaScript type
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Pages by the path that serves them: ``/console/`` and ``/console/me``.
PAGES = {"": "index.html", "me": "me.html"}
CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",  # a form submitted without its script would put a secret in a URL
    "frame-ancestors 'none'",
))  # fmt: skip
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


class StaticFile(NamedTuple):
    body: bytes
    content_type: str


FILES = web.AppKey("console_files", dict[str, StaticFile])


def load_files(root: Path = CONSOLE_DIR) -> dict[str, StaticFile]:
    """Every servable file under ``root`` by its relative path (symlinks and unknown types are
    left out), and each page also under its short path."""
    files: dict[str, StaticFile] = {}
    for path in sorted(root.rglob("*")):
        kind = CONTENT_TYPES.get(path.suffix)
        if kind is None or path.is_symlink() or not path.is_file():
            continue
        files[path.relative_to(root).as_posix()] = StaticFile(path.read_bytes(), kind)
    for short, name in PAGES.items():
        files[short] = files[name]
    return files


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/", headers=HEADERS)


async def serve(request: web.Request) -> web.Response:
    found = request.app[FILES].get(request.match_info["path"])
    if found is None:
        raise NotFound("no such console file")
    return web.Response(body=found.body, headers={**HEADERS, "Content-Type": found.content_type})


def _setup(app: web.Application) -> None:
    app[FILES] = load_files()


# Open (no credentials): static files holding no data; left out of the OpenAPI document.
DIALECT = Dialect("console", (
    Route("GET", "/console", redirect, name="console.redirect", rule=OPEN, openapi=None),
    Route("GET", "/console/{path:.*}", serve, name="console.file", rule=OPEN, openapi=None),
), setup=_setup)  # fmt: skip
