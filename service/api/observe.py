"""The one middleware: every request's path through the service, in order.

1. A request id, and the in-flight gauge.
2. Access: the caller is authenticated and the route's rule checked (access.admit).
3. The handler.
4. Any exception of 2 or 3 becomes the dialect's JSON error (errors.render_exception).
5. The HTTP metrics and one JSON log line, with the final status.

One middleware rather than three: each layer cost a coroutine of ours and a wrapper of
aiohttp's on every request, about a tenth of an introspection's time.

- Request id: ``X-Request-ID`` if it is 1-128 visible ASCII characters, else a new one (32 hex
  digits: a random per-process prefix and a counter, unique without a syscall per request);
  echoed in the response and in every log line written while the request is handled.
- Log line (logger ``tokenstore.access``): ``method``, ``route`` (the route name, never the path:
  paths hold user ids), ``status``, ``duration_ms``, ``remote``; ``client_id`` of an
  authenticated caller (``self`` for a user's own token); ``user_id`` (of the path) only if
  ``TOKENSTORE_LOG_USER_IDS`` is on. Never a header, body, token or secret. Successful probes
  and scrapes (routes ``health.*``, ``ops.*``) are logged at DEBUG, everything else at INFO.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from typing import Any

from aiohttp import web

from service import logs
from service.api.access import PRINCIPAL, admit
from service.api.errors import Handler, render_exception
from service.api.metrics import METRICS
from service.api.responses import SETTINGS
from service.lifecycle import LIFECYCLE

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = web.RequestKey("request_id", str)
QUIET_ROUTES = ("health.", "ops.")
CLIENT_CLOSED = 499  # nginx's status for "the client went away before the answer"

_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count()
log = logging.getLogger("tokenstore.access")


def request_id_from(header: str | None) -> str:
    if header is not None and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    rid = request[REQUEST_ID] = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    context = logs.request_id.set(rid)
    metrics = request.app[METRICS]
    metrics.started()
    status = 500
    try:
        try:
            await admit(request)
            response = await handler(request)
        except Exception as exc:  # CancelledError is a BaseException: it passes
            response = await render_exception(request, exc)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = rid
            if request.app[LIFECYCLE].draining:
                response.force_close()  # clients reconnect, to a process that is staying
        return response
    except web.HTTPException as exc:  # only redirects get past render_exception
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        seconds = time.perf_counter() - start
        route = request.match_info.route.name or "unmatched"
        metrics.finished(route, status, seconds)
        _log(request, route, status, seconds)
        logs.request_id.reset(context)


def _log(request: web.Request, route: str, status: int, seconds: float) -> None:
    level = logging.DEBUG if route.startswith(QUIET_ROUTES) and status < 400 else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "method": request.method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "remote": request.remote,
    }
    caller = request.get(PRINCIPAL)
    if caller is not None:
        fields["client_id"] = caller.actor
    if request.app[SETTINGS].log_user_ids and "user_id" in request.match_info:
        fields["user_id"] = request.match_info["user_id"]
    logs.log_fast(log, level, "request", fields)
