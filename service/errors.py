"""The one error tree of the service; ``api/errors.py`` maps it to HTTP.

TokenStoreError
├── BadRequest          400  malformed or invalid input
│   ├── PayloadTooLarge 413
│   └── RequestTimeout  408  the body did not arrive in time (the connection is closed)
├── Unauthorized        401  missing or wrong credentials
├── Forbidden           403  valid credentials, not allowed
├── NotFound            404  no such resource (or not visible to the caller)
├── Conflict            409  the resource exists already
└── Unavailable         503  Redis cannot be reached: fail closed
    └── NotDurable      503  a revocation took effect, but too few replicas confirmed it
"""

from __future__ import annotations

from typing import Any, ClassVar


class TokenStoreError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    closes_connection: ClassVar[bool] = False  # the answer ends its connection

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class BadRequest(TokenStoreError):
    status = 400
    default_code = "invalid_request"


class PayloadTooLarge(BadRequest):
    status = 413
    default_code = "payload_too_large"


class RequestTimeout(BadRequest):
    status = 408
    default_code = "request_timeout"
    closes_connection = True  # the rest of the request may never come


class Unauthorized(TokenStoreError):
    status = 401
    default_code = "unauthorized"

    def __init__(self, message: str, *, challenge: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.challenge = challenge  # the WWW-Authenticate header: how to authenticate


class Forbidden(TokenStoreError):
    status = 403
    default_code = "forbidden"


class NotFound(TokenStoreError):
    status = 404
    default_code = "not_found"


class Conflict(TokenStoreError):
    status = 409
    default_code = "conflict"


class Unavailable(TokenStoreError):
    status = 503
    default_code = "unavailable"
    retry_after_seconds: ClassVar[int] = 1


class NotDurable(Unavailable):
    """``TOKENSTORE_WAIT_REPLICAS`` replicas did not confirm a revocation in time. The Redis
    primary has it (it is in effect now), but a failover could undo it: the caller is told
    503, to retry. ``outcome`` is what the call would have returned."""

    default_code = "not_durable"

    def __init__(self, confirmed: int, wanted: int) -> None:
        super().__init__(
            f"the revocation took effect on the Redis primary, but {confirmed} of {wanted} "
            "replicas confirmed it in time; it could be undone by a failover: retry"
        )
        self.outcome: Any = None
