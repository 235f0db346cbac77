"""One error tree for the whole platform; each class maps 1:1 to a wire error.

::

    PaywardenError                      (type, code, status, message, param)
    ├── InvalidRequest        400  invalid_request_error   bad input, unknown currency, bad amount
    │   ├── IdempotencyKeyRequired   400  idempotency_key_required
    │   ├── IdempotencyConflict      422  idempotency_conflict
    │   └── IdempotencyInFlight      409  idempotency_in_flight (Retry-After)
    ├── AuthenticationFailed  401  authentication_error
    ├── PermissionDenied      403  permission_error
    ├── NotFound              404  invalid_request_error / resource_missing
    ├── Conflict              409  invalid_request_error   state conflicts (capture after void …)
    ├── Unprocessable         422  invalid_request_error   well-formed but refused (over-capture …)
    ├── PaymentDeclined       402  card_error              the rail declined
    ├── PayloadTooLarge       413  invalid_request_error / request_too_large
    ├── RateLimited           429  rate_limit_error (Retry-After)
    ├── Unavailable           503  api_error / service_unavailable (Retry-After)
    └── InvariantViolation    500  api_error / invariant_violation  a bug: writes stop

The wire form is ``{"error": {"type", "code", "message", "param"}}``; ``param`` is a JSON path
(``$.amount``) naming the offending input, or ``None``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationFailed",
    "Conflict",
    "IdempotencyConflict",
    "IdempotencyInFlight",
    "IdempotencyKeyRequired",
    "InvalidRequest",
    "InvariantViolation",
    "NotFound",
    "PayloadTooLarge",
    "PaymentDeclined",
    "PaywardenError",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
    "Unprocessable",
]


class PaywardenError(Exception):
    """The root of every error paywarden raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.retry_after_s = retry_after_s

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, param={self.param!r}, {self.message!r})"


class InvalidRequest(PaywardenError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class IdempotencyKeyRequired(InvalidRequest):
    default_code = "idempotency_key_required"


class IdempotencyConflict(InvalidRequest):
    status = 422
    default_code = "idempotency_conflict"


class IdempotencyInFlight(InvalidRequest):
    status = 409
    default_code = "idempotency_in_flight"


class AuthenticationFailed(PaywardenError):
    status = 401
    type = "authentication_error"
    default_code = "authentication_required"


class PermissionDenied(PaywardenError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class NotFound(PaywardenError):
    status = 404
    type = "invalid_request_error"
    default_code = "resource_missing"


class Conflict(PaywardenError):
    status = 409
    type = "invalid_request_error"
    default_code = "state_conflict"


class Unprocessable(PaywardenError):
    status = 422
    type = "invalid_request_error"
    default_code = "unprocessable"


class PaymentDeclined(PaywardenError):
    status = 402
    type = "card_error"
    default_code = "card_declined"


class PayloadTooLarge(PaywardenError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(PaywardenError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limited"


class Unavailable(PaywardenError):
    status = 503
    type = "api_error"
    default_code = "service_unavailable"


class InvariantViolation(PaywardenError):
    """A broken invariant is a bug; the transaction that found it is rolled back."""

    status = 500
    type = "api_error"
    default_code = "invariant_violation"
