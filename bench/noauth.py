"""``tokenstore serve`` with authentication switched off for ``POST /v1/introspect`` only.

``python -m bench.noauth`` runs the service exactly as ``tokenstore serve`` does, except that
the ``v1.introspect`` access rule is ``service.auth.OPEN``: the access middleware still runs,
but takes its open-route exit (no header parsing, no client lookup, no secret hash), and the
handler, which reads the caller's scope, gets a fixed admin principal (every app). Every
other route keeps its rule. Bench-only: it patches this process's copy of the tables before
``create_app`` reads them; nothing in ``service/`` changes. Issue #3: "auth on vs off".
"""

from __future__ import annotations

from aiohttp import web

from service.api import native
from service.api.access import PRINCIPAL
from service.auth import OPEN, Principal
from service.cli import main
from service.clients import Permission
from service.scope import EVERYTHING

ADMIN = Principal("bench-noauth", frozenset({Permission.ADMIN}), EVERYTHING)


def _principal(request: web.Request) -> Principal:
    try:
        return request[PRINCIPAL]
    except KeyError:
        return ADMIN


def patch() -> None:
    native.DIALECT.rules["v1.introspect"] = OPEN
    native.principal = _principal  # type: ignore[attr-defined]


if __name__ == "__main__":
    patch()
    raise SystemExit(main(["serve"]))
