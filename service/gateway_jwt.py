"""``GatewayClient``'s local JWT mode: JWTs verified in the gateway's own process, with the
service's policy and keys (``GET /v1/jwt/config``), and checked against the deny-list and
cut-offs the gateway rebuilds from the revocation feed: no round trip per request.

The state: denied jtis (until their ``exp``), per-user cut-offs (all apps, or one) from
``jwt`` events, per-app cut-offs from ``app`` events. A JWT lives at most the policy's
``max_ttl``, so every event that can still matter was written in the last ``max_ttl`` (plus
the leeway and a clock margin): the first connection asks the feed for exactly those
(``since``), and the state is complete once the feed says ``ready``.

Fail closed: before that first ``ready``, and once nothing has been heard from the feed for
longer than a heartbeat plus ``grace`` seconds, a JWT check raises GatewayError (the
middleware answers 503). Within that the state is at most that old: a revocation made
meanwhile is seen on reconnection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from service.events import EventKind, RevocationEvent
from service.identity import Identity
from service.jwt_verify import JwtClaims, JwtVerifier

# The gateway's clock may be behind the service's: the replay reaches back this much further.
CLOCK_MARGIN_MS = 60_000
ALL_APPS = "*"


class JwtRevocations:
    """Denied jtis and cut-offs, as the feed told them."""

    def __init__(self, issuers: tuple[str, ...], max_ttl_s: int, leeway_s: int) -> None:
        self._issuers = issuers
        # Each event parses its own copy of its issuer; keys hold these instead (-70 B each).
        self._shared = {issuer: issuer for issuer in issuers}
        self._keep_ms = (max_ttl_s + leeway_s) * 1000 + CLOCK_MARGIN_MS
        # A denial made when its JWT was issued up to the leeway "in the future" (accepted), or
        # before it was issued (by jti), lasts up to max_ttl + 2 leeways (+ margin) after its
        # event: a replay must reach back that far to find it.
        self._replay_ms = self._keep_ms + leeway_s * 1000
        # A JWT is accepted up to the leeway past its exp: its denial is kept as long.
        self._past_exp_ms = leeway_s * 1000 + CLOCK_MARGIN_MS
        self.denied: dict[tuple[str, str], int] = {}  # (issuer, jti) -> until, epoch ms
        self.user_cutoffs: dict[tuple[str, str], int] = {}  # (user, app or "*") -> epoch ms
        self.app_cutoffs: dict[str, int] = {}  # app -> epoch ms
        self._next_prune = 0

    def replay_since(self, now_ms: int) -> int:
        """From when the feed must be replayed to rebuild this state (epoch ms)."""
        return now_ms - self._replay_ms

    def apply(self, event: RevocationEvent, now_ms: int) -> None:
        if event.kind == EventKind.APP and event.revoked_before is not None:
            _raise(self.app_cutoffs, event.app_id, event.revoked_before)
        elif event.kind == EventKind.JWT and event.ids:
            until = (event.expires_at or now_ms + self._keep_ms) + self._past_exp_ms
            if event.issuer is None:
                issuers = self._issuers
            else:  # the configured string, shared by every key, rather than this event's copy
                issuers = (self._shared.get(event.issuer, event.issuer),)
            for issuer in issuers:
                for jti in event.ids:
                    _raise(self.denied, (issuer, jti), until)
        elif event.kind == EventKind.JWT and event.user_id and event.revoked_before is not None:
            app = event.app_id or ALL_APPS
            _raise(self.user_cutoffs, (event.user_id, app), event.revoked_before)
        if now_ms >= self._next_prune:
            self.prune(now_ms)

    def revoked(self, claims: JwtClaims) -> bool:
        if (claims.issuer, claims.jti) in self.denied:
            return True  # kept until just past its exp: a JWT past that is refused anyway
        user, app = claims.user_id, claims.app_id
        cutoff = max(
            self.user_cutoffs.get((user, ALL_APPS), 0),
            self.user_cutoffs.get((user, app), 0),
            self.app_cutoffs.get(app, 0),
        )
        # iat has whole seconds, a cut-off ms: a JWT of the cut-off's second is cut off too.
        return claims.issued_at_us < cutoff * 1000

    def prune(self, now_ms: int) -> None:
        """Forgets denials past their JWT's exp and cut-offs older than any live JWT."""
        oldest = now_ms - self._keep_ms
        self.denied = _kept(self.denied, now_ms)
        self.user_cutoffs = _kept(self.user_cutoffs, oldest)
        self.app_cutoffs = _kept(self.app_cutoffs, oldest)
        self._next_prune = now_ms + 60_000

    def clear(self) -> None:
        self.denied.clear()
        self.user_cutoffs.clear()
        self.app_cutoffs.clear()

    def __len__(self) -> int:
        return len(self.denied) + len(self.user_cutoffs) + len(self.app_cutoffs)


K = TypeVar("K")


def _raise(table: dict[K, int], key: K, value: int) -> None:
    if value > table.get(key, 0):
        table[key] = value


def _kept(table: dict[K, int], after: int) -> dict[K, int]:
    return {key: value for key, value in table.items() if value > after}


class LocalJwt:
    """The verifier and the revocation state of one gateway, and whether they may be trusted."""

    def __init__(
        self, verifier: JwtVerifier, grace: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        policy = verifier.policy
        self.verifier = verifier
        self.revocations = JwtRevocations(policy.issuers, policy.max_ttl, policy.leeway)
        self.grace = grace
        self._clock = clock
        self.synced = False  # the state is complete (a replay reached ``ready``)
        self._last_heard = -float("inf")  # the feed's last line (monotonic s)
        self._heartbeat = 0.0  # the feed's longest quiet when healthy (s)

    def identity(self, claims: JwtClaims) -> Identity | None:
        """The JWT's identity, None if revoked; StaleState if the state cannot be trusted."""
        if not self.synced:
            raise StaleState("the JWT deny-list is not complete yet (the feed is replaying)")
        # Counted from the last line heard, not from a loss noticed later: a silent connection
        # (a partition, half-open TCP) is found out only after several heartbeats.
        silent = self._clock() - self._last_heard
        if silent > self.grace + self._heartbeat:
            raise StaleState(
                f"nothing heard from the revocation feed for {silent:.1f} s (more than a "
                f"heartbeat and the grace, {self.grace:g} s): JWTs are not checked locally "
                "until it is back"
            )
        if self.revocations.revoked(claims):
            return None
        return Identity(
            claims.jti, claims.user_id, claims.app_id, claims.scopes, claims.expires_at_ms
        )

    def heard(self) -> None:
        """The feed said something (an event, a heartbeat): the state is that fresh."""
        self._last_heard = self._clock()

    def feed_ready(self, heartbeat: float) -> None:
        self._heartbeat = heartbeat
        self.synced = True
        self.heard()

    def start_over(self) -> None:
        """Events were lost: the state is unknown until a new replay completes it."""
        self.revocations.clear()
        self.synced = False


class StaleState(Exception):
    """The deny-list may miss revocations: a local JWT check must not answer."""
