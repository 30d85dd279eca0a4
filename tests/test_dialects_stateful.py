"""A stateful property test (issue #10): issues and revocations through every dialect, in an
order hypothesis chooses, against two real ``tokenstore serve`` processes on one real Redis.

Each call goes to one of the two processes, at random. The model knows which tokens every
acknowledged (2xx) revocation covers; the test asserts that

- each revocation answers what the model expects (the ids it revoked, where a dialect says);
- no revoked token is ever answered active by any introspection dialect (native
  ``/v1/introspect``, RFC 7662 ``/oauth2/introspect``, ``/v1/authz``) of either process: checked
  through all of them right after each revocation, at random steps, and for every token at the
  end of each run;
- a token no call revoked is answered active everywhere (revocations of other users, apps or
  tokens, or through a path naming another user, leave it alone).

Every run uses user and app ids of its own, so that runs share nothing but the processes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from helpers import ADMIN_HEADERS
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)
from redis_servers import RedisServer
from service_process import ServiceProcess

pytestmark = pytest.mark.slow

USERS = ("alice", "bob", "carol")
APPS = ("web", "mobile")
TIMEOUT = 10.0
VIA = st.sampled_from([0, 1])  # which of the two processes takes the call
INTROSPECTIONS = ("native", "oauth", "authz")
# About 15 s on a quiet 2-core machine; several times that on a loaded one.
RUNS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class Token:
    id: str
    value: str
    user: str
    app: str
    revoked: bool = False
    # Revoked by an app-wide revocation: its record stays in Redis until the app sweep deletes
    # it, and until then a later revocation by id or of its user deletes it, and says so.
    by_app: bool = False


class Services:
    """The two processes, each behind keep-alive HTTP sessions: one with the admin
    credentials, one with none (for calls whose credential is a user's token)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.sessions = [requests.Session() for _ in urls]
        self.bare = [requests.Session() for _ in urls]
        for session in self.sessions:
            session.headers.update(ADMIN_HEADERS)

    def call(self, via: int, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.sessions[via].request(method, self.urls[via] + path, timeout=TIMEOUT, **kwargs)

    def call_as(
        self, token: Token, via: int, method: str, path: str, **kwargs: Any
    ) -> requests.Response:
        """A call with ``token`` as its only credential."""
        own = {"Authorization": f"Bearer {token.value}"}
        url = self.urls[via] + path
        return self.bare[via].request(method, url, headers=own, timeout=TIMEOUT, **kwargs)

    def active(self, via: int, dialect: str, token: Token) -> bool:
        """Whether ``dialect`` of process ``via`` answers ``token`` active (and as whose)."""
        if dialect == "authz":  # the token is the only credential
            response = self.call_as(token, via, "GET", "/v1/authz")
            assert response.status_code in {200, 401}, response.text
            if response.status_code == 200:
                assert response.headers["X-Token-Id"] == token.id
            return response.status_code == 200
        if dialect == "native":
            response = self.call(via, "POST", "/v1/introspect", json={"token": token.value})
        else:
            response = self.call(via, "POST", "/oauth2/introspect", data={"token": token.value})
        assert response.status_code == 200, response.text
        answer = response.json()
        if answer["active"]:
            owner = answer["user_id"] if dialect == "native" else answer["sub"]
            assert (answer.get("id") or answer.get("jti"), owner) == (token.id, token.user)
        return bool(answer["active"])

    def close(self) -> None:
        for session in self.sessions + self.bare:
            session.close()


@pytest.fixture(scope="module")
def services(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    redis_server.flush()
    settings = {"TOKENSTORE_REDIS_URL": redis_server.url}
    with (
        ServiceProcess(tmp_path_factory.mktemp("first"), settings) as first,
        ServiceProcess(tmp_path_factory.mktemp("second"), settings) as second,
    ):
        asyncio.run(first.wait_ready())
        asyncio.run(second.wait_ready())
        both = Services([first.url, second.url])
        yield both
        both.close()


def _ids(response: requests.Response, status: int = 200) -> set[str]:
    assert response.status_code == status, response.text
    return set(response.json()["revoked"])


class Dialects(RuleBasedStateMachine):
    tokens = Bundle("tokens")

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.run = secrets.token_hex(4)
        self.model: list[Token] = []
        self.checks = 0

    @initialize(target=tokens, via=VIA)
    def seed(self, via: int) -> MultipleResults[Token]:
        """One token of each user in each app, so that every revocation has bystanders."""
        pairs = [(user, app) for user in USERS for app in APPS]
        return multiple(*(self._issue(u, a, via, n % 2 == 1) for n, (u, a) in enumerate(pairs)))

    def user(self, name: str) -> str:
        return f"{self.run}-{name}"

    def app(self, name: str) -> str:
        return f"{self.run}-{name}"

    def live(self, user: str | None = None, app: str | None = None) -> set[str]:
        return {
            t.id
            for t in self.model
            if not t.revoked and (user is None or t.user == user) and (app is None or t.app == app)
        }

    def lingering(self, user: str | None = None, app: str | None = None) -> set[str]:
        """Tokens of an app-wide revocation that a later revocation may list (see by_app)."""
        return {
            t.id
            for t in self.model
            if t.by_app and (user is None or t.user == user) and (app is None or t.app == app)
        }

    def revoked(self, ids: set[str]) -> None:
        """Marks ``ids`` revoked, then checks them through every dialect of both processes,
        and every other token through one of them (in turn): still active."""
        for token in self.model:
            if token.id in ids:
                token.revoked = True
                for via in (0, 1):
                    for dialect in INTROSPECTIONS:
                        assert not self.services.active(via, dialect, token), (via, dialect)
            elif not token.revoked:
                self.checks += 1
                via, dialect = self.checks % 2, INTROSPECTIONS[self.checks % 3]
                assert self.services.active(via, dialect, token), (via, dialect, token)

    # --- issue --------------------------------------------------------------------------------

    @rule(
        target=tokens, user=st.sampled_from(USERS), app=st.sampled_from(APPS), via=VIA,
        external=st.booleans(),
    )  # fmt: skip
    def issue(self, user: str, app: str, via: int, external: bool) -> Token:
        return self._issue(user, app, via, external)

    def _issue(self, user: str, app: str, via: int, external: bool) -> Token:
        body = {"user_id": self.user(user), "app_id": self.app(app)}
        if external:  # an IdP's value, registered: found through its digest pointer
            body["token"] = "ext-" + secrets.token_urlsafe(24)
        response = self.services.call(via, "POST", "/v1/tokens", json=body)
        assert response.status_code == 201, response.text
        answer = response.json()
        token = Token(
            answer["id"], body.get("token") or answer["token"], body["user_id"], body["app_id"]
        )
        self.model.append(token)
        return token

    # --- one token ----------------------------------------------------------------------------

    @rule(
        token=tokens, via=VIA,
        how=st.sampled_from(["native_value", "native_id", "oauth", "fa_query", "fa_json",
                             "fa_form", "fa_id", "usergrid_app", "usergrid_all", "onegini"]),
    )  # fmt: skip
    def revoke_token(self, token: Token, via: int, how: str) -> None:
        was_live = not token.revoked
        expected = {token.id} if was_live else set()
        call, value = self.services.call, token.value
        if how == "native_value":
            assert _ids(call(via, "POST", "/v1/revoke", json={"token": value})) == expected
        elif how == "native_id":
            got = _ids(call(via, "DELETE", f"/v1/tokens/{token.id}"))
            assert expected <= got <= expected | (self.lingering() & {token.id})
        elif how == "oauth":
            assert call(via, "POST", "/oauth2/revoke", data={"token": value}).status_code == 200
        elif how.startswith("fa_"):
            statuses = {200} if was_live or how != "fa_id" else {404}
            if token.by_app and how == "fa_id":
                statuses.add(200)
            assert _fusionauth_token(self.services, via, how, token).status_code in statuses
        elif how.startswith("usergrid"):
            prefix = f"/org/{token.app}" if how == "usergrid_app" else "/management"
            path = f"{prefix}/users/{token.user}/revoketoken"
            response = call(via, "PUT", path, params={"token": value})
            assert response.status_code == (200 if was_live else 400), response.text
        else:
            path = f"/oauth/api/v1/users/{token.user}/tokens/{token.id}"
            assert call(via, "DELETE", path).status_code == 204
        self.revoked(expected)

    @rule(
        token=tokens, via=VIA, other=st.sampled_from(USERS),
        how=st.sampled_from(["usergrid_app", "usergrid_all", "onegini"]),
    )  # fmt: skip
    def revoke_token_naming_another_user(
        self, token: Token, via: int, other: str, how: str
    ) -> None:
        """A path naming another user than the token's revokes nothing."""
        user = self.user(other)
        if user == token.user:
            user = self.user("dave")
        if how == "onegini":
            path = f"/oauth/api/v1/users/{user}/tokens/{token.id}"
            assert self.services.call(via, "DELETE", path).status_code == 204
        else:
            prefix = f"/org/{token.app}" if how == "usergrid_app" else "/management"
            response = self.services.call(
                via, "PUT", f"{prefix}/users/{user}/revoketoken", params={"token": token.value}
            )
            assert response.status_code == 400
        self._assert_answers(token)

    # --- a user's tokens, in one app or all ---------------------------------------------------

    @rule(
        user=st.sampled_from(USERS), app=st.sampled_from([None, *APPS]), via=VIA,
        how=st.sampled_from(["native", "fusionauth", "usergrid"]),
    )  # fmt: skip
    def revoke_user(self, user: str, app: str | None, via: int, how: str) -> None:
        user_id, app_id = self.user(user), None if app is None else self.app(app)
        expected = self.live(user_id, app_id)
        call = self.services.call
        if how == "native":
            params = {} if app_id is None else {"app_id": app_id}
            got = _ids(call(via, "DELETE", f"/v1/users/{user_id}/tokens", params=params))
            assert expected <= got <= expected | self.lingering(user_id, app_id)
        elif how == "fusionauth":
            criteria = {"userId": user_id} | ({} if app_id is None else {"applicationId": app_id})
            assert call(via, "DELETE", "/api/jwt/refresh", json=criteria).status_code == 200
        else:
            prefix = "/management" if app_id is None else f"/org/{app_id}"
            response = call(via, "POST", f"{prefix}/users/{user_id}/revoketokens")
            assert response.status_code == 200
            assert response.json()["action"] == "revoked user tokens"
        self.revoked(expected)

    @rule(token=tokens, via=VIA, how=st.sampled_from(["native", "usergrid_app", "usergrid_all"]))
    def log_out_with_own_token(self, token: Token, via: int, how: str) -> None:
        """Self-service: the user's own token as the credential (a revoked one is refused)."""
        if how == "native":
            expected = self.live(token.user)
            path = f"/v1/users/{token.user}/tokens"
        else:
            app = token.app if how == "usergrid_app" else None
            expected = self.live(token.user, app)
            prefix = "/management" if app is None else f"/org/{app}"
            path = f"{prefix}/users/{token.user}/revoketokens"
        response = self.services.call_as(token, via, "DELETE" if how == "native" else "PUT", path)
        if token.revoked:
            assert response.status_code == 401
            return
        assert response.status_code == 200, response.text
        if how == "native":
            got = set(response.json()["revoked"])
            assert expected <= got <= expected | self.lingering(token.user)
        self.revoked(expected)

    # --- a whole app --------------------------------------------------------------------------

    @rule(app=st.sampled_from(APPS), via=VIA, how=st.sampled_from(["native", "fusionauth"]))
    def revoke_app(self, app: str, via: int, how: str) -> None:
        app_id = self.app(app)
        expected = self.live(app=app_id)
        if how == "native":
            response = self.services.call(via, "DELETE", f"/v1/apps/{app_id}/tokens")
            assert response.status_code == 200
            assert isinstance(response.json()["revoked_before"], int)
        else:
            params = {"applicationId": app_id}
            assert self.services.call(via, "DELETE", "/api/jwt/refresh", params=params).ok
        for token in self.model:
            token.by_app |= token.id in expected
        self.revoked(expected)

    # --- checks -------------------------------------------------------------------------------

    @rule(token=tokens)
    def introspect(self, token: Token) -> None:
        self._assert_answers(token)

    def _assert_answers(self, token: Token) -> None:
        for via in (0, 1):
            for dialect in INTROSPECTIONS:
                assert self.services.active(via, dialect, token) is not token.revoked, (
                    via,
                    dialect,
                    token,
                )

    def teardown(self) -> None:
        for token in self.model:
            self._assert_answers(token)


def _fusionauth_token(services: Services, via: int, how: str, token: Token) -> requests.Response:
    if how == "fa_id":
        return services.call(via, "DELETE", f"/api/jwt/refresh/{token.id}")
    kwargs: dict[str, Any] = {
        "fa_query": {"params": {"token": token.value}},
        "fa_json": {"json": {"token": token.value}},
        "fa_form": {"data": {"token": token.value}},
    }[how]
    return services.call(via, "DELETE", "/api/jwt/refresh", **kwargs)


# Far above the run's time: pytest-timeout's exception inside a run would be taken by
# hypothesis for a failure, and shrunk.
@pytest.mark.timeout(900)
def test_no_revoked_token_is_ever_active_through_any_dialect_or_process(
    services: Services,
) -> None:
    class OnTheseProcesses(Dialects):
        def __init__(self) -> None:
            super().__init__(services)

    run_state_machine_as_test(OnTheseProcesses, settings=RUNS)
