"""The webhook delivery worker: fan out the outbox, claim due deliveries, POST, record.

One round (:meth:`DeliveryWorker.run_once`) is three short transactions around the HTTP
calls, which run outside any transaction, a few at a time::

    fan_out → claim (leases) → POST each (httpx, timeout) → record each

Run several workers, or kill one at any moment: a claim is a lease, so a delivery whose
worker died is sent again once the lease lapses (at-least-once; receivers dedupe on
``webhook-id``). ``paywarden serve`` runs the same rounds in-process
(``webhook_delivery_in_process``); ``paywarden webhooks worker`` runs them on their own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx

import paywarden
from paywarden.config import Settings
from paywarden.kernel.clock import rfc3339
from paywarden.services import webhook_delivery
from paywarden.services.webhook_delivery import AttemptResult, Claim, RetryPolicy
from paywarden.store.tables_webhooks import RESPONSE_EXCERPT_CHARS_MAX
from paywarden.store.unit_of_work import Store
from paywarden.trust.webhook_signing import merchant_signature, standard_headers

__all__ = ["DeliveryWorker", "Outcome", "deliver_in_process", "retry_policy", "signed_headers"]

log = logging.getLogger("paywarden.webhooks")
SENDERS_MAX = 8
USER_AGENT = f"paywarden-webhooks/{paywarden.__version__}"


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry schedule and limits the settings ask for."""
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    return RetryPolicy(
        base_s=settings.webhook_retry_base_s,
        cap_s=max(settings.webhook_retry_cap_s, settings.webhook_retry_base_s),
        window_s=settings.webhook_retry_window_s,
        lease_s=max(settings.webhook_lease_s, settings.webhook_timeout_s * 2),
        timeout_s=settings.webhook_timeout_s,
        permalink_base=base,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    claim: Claim
    result: AttemptResult
    outcome: str  # delivered, failed, dead

    def line(self) -> str:
        code = self.result.status_code if self.result.status_code is not None else "---"
        why = f" ({self.result.error})" if self.result.error else ""
        return (
            f"{self.outcome:<9} {code} {self.claim.event_type:<28} {self.claim.event_id} → "
            f"{self.claim.url} attempt {self.claim.attempt}{why}"
        )


def signed_headers(claimed: Claim, now: datetime) -> dict[str, str]:
    """The headers of one POST, signed at ``now``."""
    timestamp = int(now.timestamp())
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if claimed.format == "acp":
        headers["timestamp"] = rfc3339(now)
        headers["merchant-signature"] = merchant_signature(
            claimed.secrets[0], timestamp, claimed.body
        )
        headers["request-id"] = claimed.event_id  # the same on every retry: dedupe on it
        headers["webhook-id"] = claimed.event_id
        return headers
    signed = standard_headers(claimed.secrets, claimed.event_id, timestamp, claimed.body)
    return {**headers, **signed.as_dict()}


class DeliveryWorker:
    """Delivers due webhooks from ``store``. ``fraction`` draws the retry jitter (tests pass
    a fixed one); ``on_outcome`` hears about every attempt (the CLI prints a line)."""

    def __init__(
        self,
        store: Store,
        master_key: bytes,
        policy: RetryPolicy,
        *,
        client: httpx.Client | None = None,
        fraction: Callable[[], float] = random.random,
        on_outcome: Callable[[Outcome], None] | None = None,
        batch_max: int = webhook_delivery.CLAIM_BATCH_MAX,
    ) -> None:
        self.store = store
        self.master_key = master_key
        self.policy = policy
        self.client = client or httpx.Client(
            timeout=policy.timeout_s, follow_redirects=False, trust_env=False
        )
        self.fraction = fraction
        self.on_outcome = on_outcome
        self.batch_max = batch_max

    def close(self) -> None:
        self.client.close()

    def run_once(self) -> list[Outcome]:
        """One round: fan out, claim, send and record; the outcomes of this round."""
        while self.store.run(lambda uow: webhook_delivery.fan_out(uow, self.policy)):
            pass
        claims = self.store.run(
            lambda uow: webhook_delivery.claim(
                uow, self.policy, self.master_key, batch_max=self.batch_max
            )
        )
        if len(claims) <= 1:
            return [self._deliver(c) for c in claims]
        with ThreadPoolExecutor(max_workers=min(SENDERS_MAX, len(claims))) as pool:
            return list(pool.map(self._deliver, claims))

    def run(self, stop: threading.Event, poll_interval_s: float) -> None:
        """Rounds until ``stop`` is set; a busy round is followed at once by the next. A
        failed round (the database away, say) is logged and retried after a pause: claims
        are leases, so nothing is lost."""
        while not stop.is_set():
            try:
                busy = bool(self.run_once())
            except Exception:
                log.exception("webhook delivery round failed; retrying")
                busy = False
            if not busy:
                stop.wait(poll_interval_s)

    def _deliver(self, claimed: Claim) -> Outcome:
        result = self._post(claimed)
        outcome = self.store.run(
            lambda uow: webhook_delivery.record(uow, claimed, result, self.policy, self.fraction())
        )
        done = Outcome(claimed, result, outcome)
        if self.on_outcome is not None:
            self.on_outcome(done)
        return done

    def _post(self, claimed: Claim) -> AttemptResult:
        started_at = self.store.clock.now()
        headers = signed_headers(claimed, started_at)
        began = time.monotonic()
        try:
            with self.client.stream(
                "POST", claimed.url, content=claimed.body, headers=headers
            ) as response:
                excerpt = _read_excerpt(response)
                status = response.status_code
        except httpx.HTTPError as error:
            latency_ms = int((time.monotonic() - began) * 1000)
            message = f"{type(error).__name__}: {error}"
            return AttemptResult(started_at, None, latency_ms, error=message)
        latency_ms = int((time.monotonic() - began) * 1000)
        failure = None if 200 <= status < 300 else f"HTTP {status}"
        return AttemptResult(started_at, status, latency_ms, failure, excerpt)


def _read_excerpt(response: httpx.Response) -> str:
    """At most ``RESPONSE_EXCERPT_CHARS_MAX`` bytes of the body: a huge answer costs nothing."""
    limit = RESPONSE_EXCERPT_CHARS_MAX
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")


async def deliver_in_process(
    store: Store,
    settings: Settings,
    master_key: Callable[[], bytes],
    in_thread: Callable[..., Awaitable[Any]] = asyncio.to_thread,
) -> None:
    """``serve``'s delivery loop: rounds every ``webhook_poll_interval_s`` in a worker
    thread (``in_thread``: the app's own background executor, which it drains before closing
    the database), doing nothing but one read while no endpoint is enabled. Errors are logged
    and the next round retries: claims are leases, so a failed round loses nothing."""
    worker: DeliveryWorker | None = None
    try:
        while True:
            await asyncio.sleep(settings.webhook_poll_interval_s)
            try:
                if not await in_thread(
                    partial(store.run, webhook_delivery.any_enabled_endpoint, read_only=True)
                ):
                    continue
                if worker is None:
                    worker = DeliveryWorker(store, master_key(), retry_policy(settings))
                while await in_thread(worker.run_once):
                    pass
            except Exception:
                log.exception("webhook delivery round failed; retrying next round")
    finally:
        if worker is not None:
            worker.close()
