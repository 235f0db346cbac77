"""The crypto limit: raw signature operations per second, and RFC 9421 verification.

Raw operations go through :mod:`paywarden.trust.keys` (PyNaCl for Ed25519, ``cryptography``
for ES256), on a message the size of a typical signature base. ``verify_request`` is the
whole RFC 9421 check paywarden runs on a signed agent request: structured-field parsing,
policy checks, the signature base, one Ed25519 verification and the Content-Digest. Its
ratio to raw Ed25519 verification is the cost of everything but the curve.

Each loop runs for a bounded time; afterwards it verifies that every operation succeeded
and that a tampered input is refused (a verifier that accepts anything would look fast).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from paywarden.bench.model import Outcome, Run, check
from paywarden.kernel.errors import PaywardenError
from paywarden.trust.keys import PrivateKey, PublicKey, ed25519_private_key, es256_private_key
from paywarden.trust.signatures import (
    Policy,
    RequestParts,
    content_digest,
    sign_request,
    verify_request,
)

__all__ = ["OPERATIONS", "measure"]

_SEED = hashlib.sha256(b"paywarden bench ed25519").digest()
_P256_SCALAR = int.from_bytes(hashlib.sha256(b"paywarden bench p256").digest(), "big")
_MESSAGE = (b'"@method": POST\n"@authority": api.example\n"@path": /v1/payments\n' * 4)[:300]
_BODY = json.dumps({"amount": 1299, "currency": "usd", "merchant": "mer_0123456789"}).encode()
_NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _ed25519() -> PrivateKey:
    return ed25519_private_key(_SEED)


def _es256() -> PrivateKey:
    return es256_private_key(ec.derive_private_key(_P256_SCALAR, ec.SECP256R1()))


def _timed(duration_s: float, operation: Callable[[], bool]) -> tuple[int, int, float, list[float]]:
    """Call ``operation`` until ``duration_s`` passes; (calls, failures, elapsed, latencies)."""
    latencies: list[float] = []
    failures = 0
    clock = time.perf_counter
    started = clock()
    deadline = started + duration_s
    while True:
        t0 = clock()
        if not operation():
            failures += 1
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return len(latencies), failures, clock() - started, latencies


def _signed_request(key: PrivateKey) -> RequestParts:
    headers = [
        ("Host", "api.example"),
        ("Content-Type", "application/json"),
        ("Content-Digest", content_digest(_BODY)),
    ]
    unsigned = RequestParts("POST", "https", "api.example", "/v1/payments", "", headers, _BODY)
    signature_input, signature = sign_request(
        unsigned,
        key=key,
        components=("@method", "@authority", "@path", "content-digest"),
        created=_NOW,
        expires=_NOW + timedelta(minutes=1),
        nonce="bench-nonce-0123456789",
        tag="agent-payer-auth",
    )
    signed = [*headers, ("Signature-Input", signature_input), ("Signature", signature)]
    return RequestParts("POST", "https", "api.example", "/v1/payments", "", signed, _BODY)


def _request_verifier(key: PrivateKey, request: RequestParts) -> Callable[[], bool]:
    public: PublicKey = key.public_key
    policy = Policy()

    def keys(keyid: str) -> PublicKey | None:
        return public if keyid == public.keyid else None

    def verify() -> bool:
        try:
            verified = verify_request(request, keys=keys, now=_NOW, policy=policy)
        except PaywardenError:
            return False
        return verified.body_digest_verified

    return verify


def _operation(name: str) -> tuple[Callable[[], bool], Callable[[], bool]]:
    """(the operation, the same operation on a tampered input, which must fail)."""
    key = _ed25519() if name in {"ed25519_sign", "ed25519_verify"} else _es256()
    signature = key.sign(_MESSAGE)
    tampered = _MESSAGE[:-1] + b"!"
    if name.endswith("_sign"):
        public = key.public_key
        return (
            lambda: len(key.sign(_MESSAGE)) == 64,
            lambda: public.verify(tampered, key.sign(_MESSAGE)),
        )
    if name == "rfc9421_verify":
        key = _ed25519()
        request = _signed_request(key)
        bad = RequestParts(
            request.method,
            request.scheme,
            request.authority,
            "/v1/refunds",
            "",
            request.headers,
            request.body,
        )
        return _request_verifier(key, request), _request_verifier(key, bad)
    public = key.public_key
    return (
        lambda: public.verify(_MESSAGE, signature),
        lambda: public.verify(tampered, signature),
    )


OPERATIONS = ("ed25519_verify", "ed25519_sign", "es256_verify", "es256_sign", "rfc9421_verify")


def measure(name: str, duration_s: float) -> Outcome:
    """Run operation ``name`` for ``duration_s`` and verify it."""
    operation, tampered = _operation(name)
    check(operation(), f"{name}: the warm-up operation failed")
    count, failures, elapsed, latencies = _timed(duration_s, operation)
    check(failures == 0, f"{name}: {failures} of {count} operations failed")
    check(not tampered(), f"{name}: a tampered input was accepted")
    return Outcome(
        Run(
            count,
            elapsed,
            latencies,
            [f"{count} operations succeeded", "a tampered input was refused"],
        )
    )
