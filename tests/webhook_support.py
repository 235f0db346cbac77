"""Webhook test helpers: a loopback receiver, an independent ACP signature check, principals
and events made directly through the services.

The receiver is a real HTTP server on 127.0.0.1 (a thread): it answers what ``answer``
decides, records every request, and "processes" each webhook once by its ``webhook-id``
(Standard Webhooks' advice), counting duplicates apart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import identity
from paywarden.store.outbox import emit
from paywarden.store.unit_of_work import Store, UnitOfWork

# From openapi.agentic_checkout_webhook.yaml: `t=<unix_seconds>,v1=<64_hex>`,
# HMAC-SHA256(timestamp + "." + raw_body, secret).
MERCHANT_SIGNATURE = re.compile(r"^t=\d+,v1=[a-fA-F0-9]{64}$")


def acp_signature_valid(secret: str, header: str, body: bytes) -> bool:
    """The ACP check, written from the spec alone (not paywarden's code)."""
    if not MERCHANT_SIGNATURE.match(header):
        return False
    fields = dict(part.split("=", 1) for part in header.split(","))
    signed = fields["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"].lower())


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    url: str
    answer: Callable[[Received], int]
    received: list[Received] = field(default_factory=list)
    processed: dict[str, Received] = field(default_factory=dict)
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if 200 <= r.status < 300]


@contextmanager
def receiver(answer: Callable[[Received], int] = lambda _r: 200) -> Iterator[Receiver]:
    """A loopback HTTP receiver for the block's duration."""
    state = Receiver(url="", answer=answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Received(self.path, headers, body, 0)
            status = state.answer(request)
            request.status = status
            with state.lock:
                state.received.append(request)
                if 200 <= status < 300:
                    key = headers.get("webhook-id", "")
                    if key in state.processed:
                        state.duplicates += 1
                    else:
                        state.processed[key] = request
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"received": true}')
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker was killed while we answered: that is the test

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def principal(kind: PrincipalType, owner: str | None) -> Principal:
    return Principal(kind, owner, False, "key_test", identity.API_VERSION)


ADMIN = principal(PrincipalType.ADMIN, None)


def make_merchant(store: Store, name: str = "Shop") -> Principal:
    record, _key = store.run(
        lambda uow: identity.create_merchant(
            uow, name=name, category="coffee", currency="usd", fee_bps=0, livemode=False
        )
    )
    return principal(PrincipalType.MERCHANT, record.id)


def order_object(order_id: str, merchant_id: str, status: str = "created") -> dict[str, Any]:
    """An order shaped like the commerce wire order, for events we emit ourselves."""
    return {
        "id": order_id,
        "object": "order",
        "livemode": False,
        "created": "2026-11-29T09:00:00.000Z",
        "checkout_session_id": "cs_01JD6Z0000000000000000000A",
        "merchant_id": merchant_id,
        "status": status,
        "currency": "usd",
        "line_items": [
            {"id": "li_1", "name": "Flat white", "quantity": 2, "unit_amount": 450},
        ],
        "totals": {"items": 900, "tax": 72, "total": 972},
        "amount_total": 972,
        "amount_refunded": 0,
        "refunds": [],
    }


def emit_event(store: Store, event_type: str, data: dict[str, Any]) -> str:
    def work(uow: UnitOfWork) -> str:
        return emit(uow, event_type, False, data)

    event_id: str = store.run(work)
    return event_id
