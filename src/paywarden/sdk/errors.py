"""Wire errors back into the server's error tree (:mod:`paywarden.kernel.errors`).

The server answers ``{"error": {"type", "code", "message", "param"}}`` with a status; the SDK
raises the same class the server raised, with the same ``code`` and ``param``, so that
``except NotFound`` reads the same on both sides. What the class cannot hold (the status, the
request id, extra members such as the ``approval`` of a 409) is in :class:`ErrorDetails`,
read with :func:`details`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paywarden.kernel.errors import (
    AuthenticationFailed,
    Conflict,
    IdempotencyConflict,
    IdempotencyInFlight,
    IdempotencyKeyRequired,
    InvalidRequest,
    InvariantViolation,
    NotFound,
    PayloadTooLarge,
    PaymentDeclined,
    PaywardenError,
    PermissionDenied,
    RateLimited,
    Unavailable,
    Unprocessable,
)

__all__ = ["ConnectionFailed", "ErrorDetails", "details", "from_response"]

_BY_CODE: dict[str, type[PaywardenError]] = {
    "idempotency_key_required": IdempotencyKeyRequired,
    "idempotency_conflict": IdempotencyConflict,
    "idempotency_in_flight": IdempotencyInFlight,
    "invariant_violation": InvariantViolation,
}
_BY_STATUS: dict[int, type[PaywardenError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    402: PaymentDeclined,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}


class ConnectionFailed(Unavailable):
    """The server could not be reached (after the retries); nothing is known of the effect.
    Retrying with the same Idempotency-Key is safe."""

    default_code = "connection_failed"


@dataclass(frozen=True)
class ErrorDetails:
    status: int
    request_id: str | None
    body: dict[str, Any] = field(default_factory=dict)


def from_response(
    status: int, body: Any, request_id: str | None, retry_after_s: int | None
) -> PaywardenError:
    """The error for a non-2xx answer: the class by ``code`` when it names one, else by
    status; an unreadable body still gives the class of its status."""
    wire = body.get("error") if isinstance(body, dict) else None
    if not isinstance(wire, dict):
        wire = {"message": f"HTTP {status} without a paywarden error body"}
    code = wire.get("code") if isinstance(wire.get("code"), str) else None
    kind = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or PaywardenError
    error = kind(
        str(wire.get("message") or f"HTTP {status}"),
        code=code,
        param=wire.get("param") if isinstance(wire.get("param"), str) else None,
        retry_after_s=retry_after_s,
    )
    error.paywarden_details = ErrorDetails(status, request_id, wire)  # type: ignore[attr-defined]
    return error


def details(error: PaywardenError) -> ErrorDetails | None:
    """The status, request id and whole wire error of an error the SDK raised."""
    found = getattr(error, "paywarden_details", None)
    return found if isinstance(found, ErrorDetails) else None
