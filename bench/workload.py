"""Typical tokens: UUID user ids, ~10 apps, 2-3 scopes, client and device names, no metadata."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

APPS = (
    "acme-web",
    "acme-ios",
    "acme-android",
    "acme-desktop",
    "partner-portal",
    "admin-console",
    "support-desk",
    "smart-tv",
    "billing",
    "developer-cli",
)
SCOPE_SETS = (
    ("openid", "profile"),
    ("openid", "profile", "email"),
    ("openid", "offline_access"),
    ("read", "write", "offline_access"),
)
CLIENT_NAMES = ("Acme Web", "Acme for iOS", "Acme for Android", "Acme Desktop", "acme-cli")
DEVICE_NAMES = (
    "Chrome 131 on macOS",
    "Firefox 133 on Windows",
    "iPhone 15 Pro",
    "Pixel 8",
    "Samsung Galaxy S24",
    "MacBook Air",
)
TYPES = ("refresh", "access")


@dataclass(frozen=True, slots=True)
class Spec:
    """One token to issue: the body of ``POST /v1/tokens`` minus ``ttl``."""

    user_id: str
    app_id: str
    type: str
    scopes: tuple[str, ...]
    client_name: str
    device_name: str

    def body(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "app_id": self.app_id,
            "type": self.type,
            "scopes": list(self.scopes),
            "client_name": self.client_name,
            "device_name": self.device_name,
        }


def user_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def typical(rng: random.Random, user: str, app: str) -> Spec:
    return Spec(
        user_id=user,
        app_id=app,
        type=rng.choice(TYPES),
        scopes=rng.choice(SCOPE_SETS),
        client_name=rng.choice(CLIENT_NAMES),
        device_name=rng.choice(DEVICE_NAMES),
    )


def population(
    tokens: int, per_user: int, apps: tuple[str, ...] = APPS, seed: int = 1
) -> Iterator[Spec]:
    """``tokens`` typical tokens, ``per_user`` per user (the last user may hold fewer).

    A user with several tokens uses two apps (say web and phone) and alternates between them;
    a user with one token uses one app. Apps are drawn uniformly.
    """
    rng = random.Random(seed)
    made = 0
    while made < tokens:
        user = user_id(rng)
        own = rng.sample(apps, 2) if per_user > 1 and len(apps) > 1 else [rng.choice(apps)]
        for i in range(min(per_user, tokens - made)):
            yield typical(rng, user, own[i % len(own)])
        made += per_user
