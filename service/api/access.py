"""Access: authenticates the caller and checks the route's rule, before any handler runs
(``admit``, called by the request middleware in observe.py).

Every route is declared with its rule (service.api.routing), and ``create_app`` registers the
rules by route name. A route added to the router some other way has no rule and makes
``create_app`` fail (``check_rules``), so a new route cannot be served open by mistake.
"""

from __future__ import annotations

from functools import partial

from aiohttp import hdrs, web

from service.api.responses import CLIENTS, service
from service.auth import CredentialCache, Principal, Rule, authenticate, authorize
from service.scope import EVERYTHING

RULES = web.AppKey("access_rules", dict[str, Rule])
PRINCIPAL = web.RequestKey("principal", Principal)
CREDENTIALS = web.AppKey("credential_cache", CredentialCache)


def check_rules(app: web.Application) -> None:
    rules = app[RULES]
    for route in app.router.routes():
        if route.name not in rules:
            raise RuntimeError(
                f"route {route.method} {route.resource.canonical if route.resource else '?'} "
                f"(name {route.name!r}) has no access rule: declare it as a Route of a dialect"
            )


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def _header(request: web.Request) -> str | None:
    values = request.headers.getall(hdrs.AUTHORIZATION, ())
    # Two Authorization headers: which one a proxy checked is unknowable, so neither counts.
    return values[0] if len(values) == 1 else ("" if values else None)


async def admit(request: web.Request) -> None:
    """Authenticate the caller and check the route's rule (raising Unauthorized or Forbidden);
    the caller is then ``principal(request)``. Unknown routes and open ones need nothing."""
    match = request.match_info
    if match.http_exception is not None:  # unknown route or method: nothing to guard
        return
    rule = request.app[RULES][match.route.name or ""]
    if rule.permission is None:
        return
    header = _header(request)
    registry, cache = request.app[CLIENTS], request.app[CREDENTIALS]
    caller = cache.get(registry, header) if header else None
    if caller is None:
        introspect = partial(service(request).introspect, scope=EVERYTHING)
        caller = await authenticate(header, rule, registry, introspect)
        if header:
            cache.put(header, caller)
    authorize(caller, rule, match.get("user_id"))
    request[PRINCIPAL] = caller
