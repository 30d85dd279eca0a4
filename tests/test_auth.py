"""Reading credentials from ``Authorization`` and deciding what a principal may do, without
HTTP: the forms accepted, the forms refused, and the timing-safe compare on every path."""

from __future__ import annotations

import base64
import inspect

import pytest

from service import auth, clients
from service.auth import Credentials, Principal, Rule, authorize, find_client, parse_authorization
from service.clients import ApiClient, ClientRegistry, Permission, hash_secret
from service.errors import Forbidden
from service.scope import Scope


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Basic {_b64('gw:s3cret')}", Credentials("basic", "gw", "s3cret")),
        (f"basic {_b64('gw:a:b')}", Credentials("basic", "gw", "a:b")),
        ("Bearer tkc_abc", Credentials("bearer", None, "tkc_abc")),
        ("BEARER  tkc_abc ", Credentials("bearer", None, "tkc_abc")),
        ("tkc_abc", Credentials("bare", None, "tkc_abc")),
    ],
)
def test_accepted_forms(header: str, expected: Credentials) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "Bearer",
        "Basic ",
        "Digest abc",
        "Bearer a b",
        "Basic !!!",
        f"Basic {_b64('no-colon')}",
        f"Basic {_b64(':secret')}",
        f"Basic {_b64('id:')}",
        "Basic " + base64.b64encode(b"id:\xff").decode(),
        "Bearer tkc_\u00e9",
    ],
)
def test_refused_forms(header: str) -> None:
    assert parse_authorization(header) is None


def _registry() -> ClientRegistry:
    client = ApiClient("my app", hash_secret("p+s%w"), frozenset({Permission.READ}), None)
    return ClientRegistry([client])


def test_basic_takes_raw_then_form_encoded_values() -> None:
    registry = _registry()
    raw = find_client(registry, Credentials("basic", "my app", "p+s%w"))
    encoded = find_client(registry, Credentials("basic", "my+app", "p%2Bs%25w"))
    assert raw is not None and raw == encoded
    assert find_client(registry, Credentials("basic", "my+app", "wrong")) is None


def test_every_secret_check_is_a_digest_compare_in_constant_time() -> None:
    # Inspect the code path (no timed test): lookups hash first and end in compare_digest,
    # for unknown ids too, and no module compares secrets with ==.
    find = inspect.getsource(ClientRegistry.find)
    assert "hash_secret(secret)" in find and "hmac.compare_digest(expected, digest)" in find
    assert "_NO_DIGEST if client is None" in find
    for module in (auth, clients):
        source = inspect.getsource(module)
        assert "secret ==" not in source and "== secret" not in source


CLIENT = Principal("gw", frozenset({Permission.READ}), Scope(apps=frozenset({"web"})))
SELF = Principal("self", frozenset(), Scope(user_id="alice"), "tokid")


def test_clients_need_the_route_permission() -> None:
    authorize(CLIENT, Rule(Permission.READ), None)
    with pytest.raises(Forbidden, match="lacks the 'revoke' permission"):
        authorize(CLIENT, Rule(Permission.REVOKE, self_service=True), None)


def test_self_service_acts_on_its_own_user_only() -> None:
    authorize(SELF, Rule(Permission.REVOKE, self_service=True), "alice")
    authorize(SELF, Rule(Permission.REVOKE, self_service=True), None)
    with pytest.raises(Forbidden):
        authorize(SELF, Rule(Permission.REVOKE, self_service=True), "bob")
    with pytest.raises(Forbidden):
        authorize(SELF, Rule(Permission.READ), "alice")
    assert SELF.as_actor().name == "self" and SELF.as_actor().via == "tokid"
