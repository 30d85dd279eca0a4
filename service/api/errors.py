"""The one place errors become HTTP responses (called by the request middleware, observe.py).

Domain errors (service.errors), aiohttp's own HTTP errors (unknown route, wrong method, body
too large) and anything unexpected all end here as a JSON body. Each API dialect may register
its own body shape, chosen by the first part of the matched route's name (``"oauth.revoke"``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web

from service.api.responses import json_response
from service.errors import TokenStoreError, Unauthorized, Unavailable
from service.redaction import safe_traceback

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


Renderer = Callable[[web.Request, HttpError], web.StreamResponse]
ERROR_RENDERERS = web.AppKey("error_renderers", dict[str, Renderer])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def render_default(request: web.Request, error: HttpError) -> web.StreamResponse:
    return json_response(
        {"error": error.code, "message": error.message}, error.status, error.headers
    )


def _from_exception(request: web.Request, exc: BaseException) -> HttpError:
    if isinstance(exc, TokenStoreError):
        headers = {}
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(exc.retry_after_seconds)
        elif isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = exc.challenge
        return HttpError(exc.status, exc.code, exc.message, headers)
    if isinstance(exc, web.HTTPException):
        phrase = HTTPStatus(exc.status).phrase
        code = _code(exc.status)
        headers = {k: v for k, v in exc.headers.items() if k in {"Allow", "WWW-Authenticate"}}
        messages = {
            404: f"no such route: {request.method} {request.path}",
            405: f"method {request.method} is not allowed on {request.path}",
        }
        return HttpError(exc.status, code, messages.get(exc.status, phrase), headers)
    # Without the exception's message: it may quote the request (int() quotes its argument).
    log.error("unexpected error", extra={"error": type(exc).__name__, "exc": safe_traceback(exc)})
    return HttpError(500, "internal_error", "unexpected error; it has been logged")


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        return "bad_request" if status < 500 else "internal_error"


def protocol_error(status: int, exc: BaseException | None) -> web.Response:
    """The answer to a request aiohttp could not parse (or a failure outside any handler):
    the default JSON error, naming the exception's class only (its message quotes the
    request), and the connection closed."""
    if status == 500:
        error = HttpError(500, "internal_error", "unexpected error; it has been logged")
    else:
        detail = f" ({type(exc).__name__})" if exc is not None else ""
        error = HttpError(status, _code(status), f"malformed HTTP request{detail}")
    response = json_response({"error": error.code, "message": error.message}, error.status)
    response.force_close()
    return response


async def render_exception(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The response for an exception a handler (or the access check) raised: the error body of
    the route's dialect. A redirect (an HTTPException below 400) is not an error: re-raised."""
    if isinstance(exc, web.HTTPException) and exc.status < 400:
        raise exc
    error = _from_exception(request, exc)
    dialect = (await _route_name(request)).split(".")[0]
    renderer = request.app[ERROR_RENDERERS].get(dialect, render_default)
    response = renderer(request, error)
    if isinstance(exc, TokenStoreError) and exc.closes_connection:
        response.force_close()
    return response


async def _route_name(request: web.Request) -> str:
    """The matched route's name; for a wrong method, the name of the route at that path."""
    name = request.match_info.route.name
    if name or request.match_info.http_exception is None:
        return name or ""
    for resource in request.app.router.resources():
        _match, allowed_methods = await resource.resolve(request)
        if allowed_methods and resource.name:
            return resource.name
    return ""
