"""What a webhook sends: the body of an event in the webhook's format, and the Standard
Webhooks headers that sign it (the ``standardwebhooks`` reference library signs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook as Signer

from service.events import EventKind, RevocationEvent
from service.webhooks.config import Format, Webhook

FUSIONAUTH_TYPE = "jwt.refresh-token.revoke"


@dataclass(frozen=True, slots=True)
class Message:
    """One signed POST: the same ``webhook-id`` on every attempt (receivers dedupe on it)."""

    body: bytes
    headers: dict[str, str]


def body(hook: Webhook, message_id: str, event: RevocationEvent, app_ttl_s: int) -> bytes:
    if hook.format is Format.FUSIONAUTH:
        return orjson.dumps({"event": _fusionauth(message_id, event, app_ttl_s)})
    return orjson.dumps(
        {
            "type": f"revocation.{event.kind.value}",
            "timestamp": _iso(event.at),
            "data": {**event.public(), "revoked_before": event.revoked_before},
        }
    )


def _fusionauth(message_id: str, event: RevocationEvent, app_ttl_s: int) -> dict[str, Any]:
    # Receivers written for FusionAuth read these; ``applicationTimeToLiveInSeconds`` tells
    # them how long a JWT of the app may still be presented (here the longest token lifetime,
    # which bounds a JWT's too). A ``jwt`` event has no FusionAuth kind of its own: such a
    # receiver takes it, as any of these, for "the user's JWTs (of the app) issued until now
    # are void", exact for a cut-off and the safe side for one denied jti (README, Webhooks).
    fields: dict[str, Any] = {"id": message_id, "type": FUSIONAUTH_TYPE, "createInstant": event.at}
    if event.app_id:  # none: every app of the user, as FusionAuth leaves it out then
        fields["applicationId"] = event.app_id
    fields["applicationTimeToLiveInSeconds"] = {event.app_id: app_ttl_s} if event.app_id else {}
    if event.user_id is not None:
        fields["userId"] = event.user_id
    if len(event.ids) == 1 and event.kind is not EventKind.JWT:  # a jti names no refresh token
        fields["refreshTokenId"] = event.ids[0]
    if event.info:
        fields["info"] = event.info
    return fields


def sign(hook: Webhook, message_id: str, payload: bytes, sent_at: datetime) -> Message:
    signature = Signer(hook.secret).sign(message_id, sent_at, payload.decode())
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return Message(payload, headers)


def now() -> datetime:
    return datetime.now(tz=UTC)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
