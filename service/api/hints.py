"""Cache hints: how long a gateway may reuse an answer about a token.

A live answer may be reused for ``min(TOKENSTORE_CACHE_MAX_AGE, time to expiry)`` seconds, an
inactive one for ``TOKENSTORE_NEGATIVE_CACHE_MAX_AGE``; 0 means ``no-store``. ``max-age`` is
the staleness a caller accepts: a revocation can go unseen by a cache for that long (the
revocation feed, ``/v1/events``, lets a cache drop the answer sooner). ``must-revalidate``
forbids serving the answer once stale and, per RFC 9111 section 3.5, lets a shared cache
(nginx) store an answer to a request that carried ``Authorization``.
"""

from __future__ import annotations

from service.clock import now_ms
from service.settings import Settings

NO_STORE = "no-store"


def _max_age(seconds: int) -> str:
    return f"max-age={seconds}, must-revalidate" if seconds > 0 else NO_STORE


def live(settings: Settings, expires_at: int) -> str:
    """For an answer about a live token that stops being live at epoch ms ``expires_at`` (its
    expiry, or sooner once idle: ``TokenRecord.live_until``): never past it."""
    remaining = (expires_at - now_ms()) // 1000
    return _max_age(min(settings.cache_max_age, remaining))


def inactive(settings: Settings) -> str:
    return _max_age(settings.negative_cache_max_age)
