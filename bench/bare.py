"""The reference: a bare aiohttp handler returning a fixed JSON body, run like the service.

``python -m bench.bare PORT`` serves ``POST /v1/introspect`` (and ``GET /healthz``) with the
same process model as ``tokenstore serve``: one process, uvloop, ``web.run_app``, no access
log. The body is a typical active introspection answer, so both sides send as many bytes.
"""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import web

BODY = orjson.dumps(
    {
        "active": True,
        "id": "lhomooxrciv4t5srlsokkeqp5tyxocxj",
        "user_id": "0f8e1c3a-5b7d-4e2f-9a1b-3c4d5e6f7a8b",
        "app_id": "partner-portal",
        "type": "refresh",
        "scopes": ["openid", "profile", "email"],
        "client_name": "Acme for Android",
        "device_name": "Samsung Galaxy S24",
        "metadata": None,
        "created_at": 1732170000123,
        "expires_at": 1732774800123,
    }
)


async def introspect(request: web.Request) -> web.Response:
    return web.Response(
        body=BODY, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def main(argv: list[str]) -> int:
    app = web.Application()
    app.router.add_post("/v1/introspect", introspect)
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(argv[0]), access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
