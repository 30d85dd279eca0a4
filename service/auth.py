"""Who is calling, and may they: credentials from ``Authorization``, principals, route rules.

Three forms name an API client: ``Basic base64(id:secret)`` (RFC 6749 section 2.3, what RFC 7009
and 7662 clients send), ``Bearer <secret>``, and the bare ``<secret>`` FusionAuth clients send.
On self-service routes, ``Bearer <token>`` with a live user token acts for that user alone.
No credential or secret is ever put into an error message or a log line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from service.clients import ApiClient, ClientRegistry, Permission, grants
from service.errors import Forbidden, Unauthorized
from service.records import TokenRecord
from service.scope import Scope
from service.service import Actor

Scheme = Literal["basic", "bearer", "bare"]
SELF = "self"
REALM = 'realm="tokenstore"'
CHALLENGE = f"Basic {REALM}, Bearer {REALM}"
INVALID_TOKEN_CHALLENGE = f'Basic {REALM}, Bearer {REALM}, error="invalid_token"'


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: Scheme
    client_id: str | None  # Basic only
    secret: str


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an API client, or a user acting with one of their tokens."""

    actor: str  # client id, or "self"
    permissions: frozenset[Permission]
    scope: Scope
    token_id: str | None = None  # self-service: the token presented

    @classmethod
    def of_client(cls, client: ApiClient) -> Principal:
        return cls(client.id, client.permissions, Scope(apps=client.apps))

    @classmethod
    def of_token(cls, record: TokenRecord) -> Principal:
        return cls(SELF, frozenset(), Scope(user_id=record.user_id), record.id)

    @property
    def is_self(self) -> bool:
        return self.scope.user_id is not None

    def may(self, permission: Permission) -> bool:
        return grants(self.permissions, permission)

    def as_actor(self) -> Actor:
        return Actor(self.actor, via=self.token_id)


@dataclass(frozen=True, slots=True)
class Rule:
    """What a route needs: a permission (None: open to all), and whether a user's own token
    may call it (then only on that user's tokens)."""

    permission: Permission | None
    self_service: bool = False


OPEN = Rule(None)


def parse_authorization(value: str) -> Credentials | None:
    if not value.isascii():
        return None
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    kind = scheme.lower()
    if not rest:
        bare = bool(scheme) and kind not in {"basic", "bearer"}
        return Credentials("bare", None, scheme) if bare else None
    if " " in rest:
        return None
    if kind == "bearer":
        return Credentials("bearer", None, rest)
    if kind == "basic":
        return _basic(rest)
    return None


def _basic(encoded: str) -> Credentials | None:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id or not secret:
        return None
    return Credentials("basic", client_id, secret)


def find_client(registry: ClientRegistry, credentials: Credentials) -> ApiClient | None:
    client = registry.find(credentials.client_id, credentials.secret)
    if client is not None or credentials.client_id is None:
        return client
    # RFC 6749 2.3.1 form-encodes id and secret inside Basic; most RFC 7662 clients do not.
    client_id, secret = unquote_plus(credentials.client_id), unquote_plus(credentials.secret)
    if (client_id, secret) == (credentials.client_id, credentials.secret):
        return None
    return registry.find(client_id, secret)


async def authenticate(
    header: str | None,
    rule: Rule,
    registry: ClientRegistry,
    introspect: Callable[[str], Awaitable[TokenRecord | None]],
) -> Principal:
    """The caller these credentials name. A user token is looked up only where the rule lets
    one in, so a wrong secret on any other route (introspection) costs no Redis call."""
    credentials = parse_authorization(header) if header is not None else None
    if credentials is None:
        message = "credentials required" if header is None else "malformed Authorization header"
        raise Unauthorized(message, challenge=CHALLENGE)
    client = find_client(registry, credentials)
    if client is not None:
        return Principal.of_client(client)
    if credentials.scheme == "bearer" and rule.self_service:
        record = await introspect(credentials.secret)
        if record is not None:
            return Principal.of_token(record)
        raise Unauthorized("invalid client secret or token", challenge=INVALID_TOKEN_CHALLENGE)
    raise Unauthorized("invalid client credentials", challenge=CHALLENGE)


class CredentialCache:
    """API-client principals by the exact ``Authorization`` value that named them, so that a
    gateway's repeated credentials cost a dict lookup instead of base64 and SHA-256 (7% of an
    introspection). Only successes are kept (a flood of wrong secrets cannot fill it), never
    a user's own token (it may be revoked at any moment), at most ``MAX_ENTRIES`` (then it
    starts over); it belongs to one registry and is dropped with it."""

    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._registry: ClientRegistry | None = None
        self._by_header: dict[str, Principal] = {}

    def get(self, registry: ClientRegistry, header: str) -> Principal | None:
        if registry is not self._registry:
            self._registry = registry
            self._by_header = {}
        return self._by_header.get(header)

    def put(self, header: str, principal: Principal) -> None:
        if principal.is_self:
            return
        if len(self._by_header) >= self.MAX_ENTRIES:
            self._by_header = {}
        self._by_header[header] = principal


def authorize(principal: Principal, rule: Rule, path_user_id: str | None) -> None:
    """Raise Forbidden unless the principal may call a route with this rule (on this user)."""
    if principal.is_self:
        if not rule.self_service:
            raise Forbidden("a user's own token may only list and revoke that user's tokens")
        if path_user_id is not None and not principal.scope.admits_user(path_user_id):
            raise Forbidden("a user's own token acts on that user's tokens only")
        return
    if rule.permission is not None and not principal.may(rule.permission):
        raise Forbidden(
            f"client {principal.actor!r} lacks the {rule.permission.value!r} permission"
        )
