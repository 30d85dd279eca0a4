"""Scope: the tokens a caller may see and change, applied by the service to every operation.

A client limited to some apps, or a user acting with their own token, is never told that a
token outside its scope exists: the service answers as if it did not (never a 403 that would
let ids or values be probed).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.records import TokenRecord


@dataclass(frozen=True, slots=True)
class Scope:
    apps: frozenset[str] | None = None  # None: every app
    user_id: str | None = None  # self-service: only this user's tokens

    def admits_app(self, app_id: str) -> bool:
        return self.apps is None or app_id in self.apps

    def admits_user(self, user_id: str) -> bool:
        return self.user_id is None or self.user_id == user_id

    def admits(self, record: TokenRecord) -> bool:
        return self.admits_app(record.app_id) and self.admits_user(record.user_id)

    def within(self, *, user_id: str | None = None, app_id: str | None = None) -> Scope:
        """This scope narrowed to one user's tokens and/or one app's; empty where they clash."""
        apps = self.apps if app_id is None else self.bulk_apps(app_id)
        if user_id is not None and not self.admits_user(user_id):
            apps = frozenset()
        return Scope(apps, user_id if user_id is not None else self.user_id)

    def bulk_apps(self, app_id: str | None) -> frozenset[str] | None:
        """The apps a bulk operation asked for ``app_id`` (None: all) may touch; None: every app."""
        if app_id is None:
            return self.apps
        return frozenset({app_id}) if self.admits_app(app_id) else frozenset()


EVERYTHING = Scope()
