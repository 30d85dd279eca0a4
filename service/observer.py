"""What the store and the service report as they work, for metrics.

``Observer`` is all they know of metrics: ``service.metrics.Metrics`` implements it with
Prometheus; ``NO_OBSERVER`` (the default) drops everything, for tools and tests that need none.
Arguments are bounded names (operations, kinds), never keys, ids or token values.
"""

from __future__ import annotations

from typing import Literal, Protocol

RevocationKind = Literal["token", "user", "user_app", "app", "limit", "session", "jwt"]


class Observer(Protocol):
    def redis_call(self, op: str, seconds: float, error: str | None) -> None:
        """One Redis round trip of store operation ``op``; ``error`` is the exception's class."""

    def issued(self, registered: bool) -> None:
        """A token was minted, or an externally minted one registered."""

    def introspected(self, active: bool) -> None: ...

    def revoked(self, kind: RevocationKind) -> None:
        """A revocation took effect (one per call, whatever the number of tokens)."""


class _NoObserver:
    def redis_call(self, op: str, seconds: float, error: str | None) -> None:
        pass

    def issued(self, registered: bool) -> None:
        pass

    def introspected(self, active: bool) -> None:
        pass

    def revoked(self, kind: RevocationKind) -> None:
        pass


NO_OBSERVER: Observer = _NoObserver()
