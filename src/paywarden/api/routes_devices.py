"""Devices, terminals, QR payment requests and taps over HTTP.

Owners (secret keys, ``Idempotency-Key`` on every POST):

- ``POST /v1/devices`` (a user): bind a device ``{kind, name, public_jwk, currency,
  tap_limit, daily_limit}``; ``GET /v1/devices``, ``GET /v1/devices/{id}``;
  ``POST /v1/devices/{id}/revoke`` (its owner or an admin; at once);
  ``POST /v1/devices/{id}/tokens`` (the user): a tap token (``dtk_``) for the device.
- ``POST /v1/terminals`` (a merchant): ``{kind: pos | gate | table_tag, name, public_jwk,
  settings}``; listed, read and revoked under ``/v1/devices``.
- ``POST /v1/payment_requests`` (a merchant): a QR request ``{amount?, currency, reference?,
  expires_in_s?}``; ``GET /v1/payment_requests/{id}`` and ``…/qr.svg`` / ``…/qr.png``.
- ``POST /v1/payment_requests/pay`` (an agent, signed): ``{payload, mandate, amount?}``,
  through ``POST /v1/payments``'s decisions; 201 with the payment.
- ``GET /v1/taps/{id}`` (its user, its merchant, an admin); ``GET /v1/tags/{trm_id}``
  (public: what a table tag opens).

Devices and terminals (RFC 9421 signatures with the device's key, tag ``paywarden-device``,
``keyid`` its thumbprint, ``created``/``expires``/``nonce``, ``Content-Digest`` over a body;
``Idempotency-Key`` on every POST, scoped to the device):

- ``GET /v1/device``: the device itself; ``GET /v1/device/approvals``: its user's pending
  approvals;
- ``POST /v1/device/approvals/{id}/confirm`` ``{confirmation, signature}``: the device's
  signed confirmation counts as the user's approval;
- ``POST /v1/device/payment_requests/pay`` ``{payload, amount?, confirmation, signature}``:
  the device pays a QR request under its limits;
- ``POST /v1/device/taps`` (a terminal or gate) ``{tap, cryptogram}``: 200 with the tap,
  ``approved`` or ``declined`` with reasons; the identical message answers the same.

``PAYWARDEN_TEST_TAP_CRASH`` (tests only) makes the server process exit at once during the
N-th tap: ``before_commit:N`` (the tap's transaction written, not committed) or
``after_commit:N`` (committed, not answered).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from paywarden.api import schemas as s
from paywarden.api.http import (
    _checked_body_of,
    _request_parts,
    authenticated,
    body_docs,
    error_response,
    grouped_unit,
    json_response,
    post,
    read_json,
    refuse_nul,
    request_id,
    runtime,
)
from paywarden.kernel.errors import (
    AuthenticationFailed,
    NotFound,
    PermissionDenied,
)
from paywarden.kernel.principals import Principal
from paywarden.services import (
    agents,
    approvals,
    devices,
    identity,
    payment_requests,
    payments,
    taps,
)
from paywarden.services.devices import DeviceRecord
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.devices import Confirmation
from paywarden.trust.keys import PublicKey
from paywarden.trust.signatures import RequestParts, VerifiedSignature, verify_request
from paywarden.trust.tap import TapData

__all__ = ["router"]

router = APIRouter()
M = TypeVar("M", bound=BaseModel)
_KEYS = agents.KeyCache()
CRASH_VARIABLE = "PAYWARDEN_TEST_TAP_CRASH"


# --- bodies -----------------------------------------------------------------------------


class DeviceCreate(s.Body):
    kind: StrictStr = Field(max_length=16, description="phone, glasses, watch, card or tag")
    name: StrictStr = Field(max_length=200)
    public_jwk: dict[str, Any] = Field(description="the device's Ed25519 or P-256 public key")
    currency: s.CurrencyField = Field(None, description="the currency of the limits")
    tap_limit: StrictInt | None = Field(None, description="one payment without a step-up")
    daily_limit: StrictInt | None = Field(None, description="a UTC day's total before step-up")


class TerminalCreate(s.Body):
    kind: StrictStr = Field(max_length=16, description="pos, gate or table_tag")
    name: StrictStr = Field(max_length=200)
    public_jwk: dict[str, Any] | None = Field(None, description="none for a table tag")
    settings: dict[str, Any] | None = Field(None, description="a gate's zone and fare")


class PaymentRequestCreate(s.Body):
    amount: s.AmountField = Field(None, description="absent: a static request")
    currency: s.CurrencyField
    reference: StrictStr | None = Field(None, max_length=200)
    expires_in_s: StrictInt | None = None


class AgentQrPay(s.Body):
    payload: StrictStr = Field(max_length=2000, description="the QR text")
    mandate: StrictStr = Field(max_length=40)
    amount: s.AmountField = Field(None, description="a static request's amount")


class ConfirmationIn(s.Body):
    amount: StrictInt
    currency: StrictStr = Field(max_length=3)
    payee: StrictStr = Field(max_length=40)
    cart_hash: StrictStr | None = Field(None, max_length=100)
    nonce: StrictStr = Field(max_length=64)
    user_verification: StrictStr = Field(max_length=16)

    def domain(self) -> Confirmation:
        return Confirmation(**self.model_dump())


class ApprovalConfirm(s.Body):
    confirmation: ConfirmationIn
    signature: StrictStr = Field(max_length=128, description="base64url, the device key's")


class DeviceQrPay(s.Body):
    payload: StrictStr = Field(max_length=2000)
    amount: s.AmountField = Field(None, description="a static request's amount")
    confirmation: ConfirmationIn
    signature: StrictStr = Field(max_length=128)


class TapIn(s.Body):
    token: StrictStr = Field(max_length=40)
    amount: StrictInt
    currency: StrictStr = Field(max_length=3)
    merchant: StrictStr = Field(max_length=40)
    terminal: StrictStr = Field(max_length=40)
    unpredictable_number: StrictStr = Field(max_length=32)
    counter: StrictInt
    user_verification: StrictStr = Field("none", max_length=16)


class TapSubmit(s.Body):
    tap: TapIn
    cryptogram: StrictStr = Field(max_length=128, description="base64url, the device key's")


# --- device-signed requests ---------------------------------------------------------------


async def _device_parts(request: Request) -> RequestParts:
    """The parts of a device-signed request (RFC 9421) its signature covers."""
    if "signature-input" not in request.headers:
        raise AuthenticationFailed(
            "sign device requests with the device key (RFC 9421)", code="signature_missing"
        )
    return await _request_parts(request)


def _verified(store: Store, parts: RequestParts) -> VerifiedSignature:
    """The request's signature checked against its device's key (cached, else read)."""

    def load(keyid: str) -> PublicKey | None:
        return store.run(lambda uow: devices.key_material(uow, keyid), read_only=True)

    return verify_request(
        parts,
        keys=lambda keyid: _KEYS.get(keyid, lambda: load(keyid)),
        now=store.clock.now(),
        policy=devices.DEVICE_POLICY,
    )


def _admission(store: Store, verified: VerifiedSignature) -> Callable[[UnitOfWork], DeviceRecord]:
    """The device's admission (status, nonce) in the caller's unit of work."""
    now, max_age = store.clock.now(), devices.DEVICE_POLICY.max_age
    return lambda uow: devices.admit(uow, verified, now=now, max_age=max_age)


async def device_post(
    request: Request,
    model: type[M],
    work: Callable[[UnitOfWork, DeviceRecord, M], dict[str, Any]],
    *,
    status: int = 200,
    crash: bool = False,
) -> Response:
    """``post()`` for device-signed requests: the signature is checked first; then the
    device's admission (its nonce), the Idempotency-Key's claim (scoped to the device), the
    effect and its stored answer run as one unit of work under group commit, or the key's
    stored answer is replayed."""
    parts = await _device_parts(request)
    rt = runtime(request)
    verified = await run_in_threadpool(_verified, rt.store, parts)
    key, raw = _checked_body_of(request, request.url.path, parts.body)
    req_id = request_id(request)

    def effect(uow: UnitOfWork, device: DeviceRecord, body: M) -> dict[str, Any]:
        answer = work(uow, device, body)
        if crash:
            _CRASH.reached("before_commit")
        return answer

    unit = grouped_unit(
        rt,
        _admission(rt.store, verified),
        path=request.url.path,
        key=key,
        raw=raw,
        model=model,
        work=effect,
        render=lambda answer: (status, answer),
        req_id=req_id,
    )
    answer = await rt.store.grouped(unit)
    if answer.error is not None:
        return error_response(answer.error, req_id)
    if crash and not answer.replayed:
        _CRASH.reached("after_commit")
    return json_response(
        answer.status, answer.body, version=identity.API_VERSION, replayed=answer.replayed
    )


async def device_get(request: Request, work: Callable[[UnitOfWork, DeviceRecord], Any]) -> Response:
    """A device-signed read: the signature checked first, then the device's admission (its
    nonce) and the read as one unit of work under group commit."""
    store = runtime(request).store
    verified = await run_in_threadpool(_verified, store, await _device_parts(request))
    admit = _admission(store, verified)
    body = await store.grouped(lambda uow: work(uow, admit(uow)))
    return json_response(200, json.dumps(body), version=identity.API_VERSION)


class _CrashPoint:
    """The test-only crash hook: with ``PAYWARDEN_TEST_TAP_CRASH=before_commit:3`` the
    process exits, without any cleanup, when its third tap reaches that point. The variable
    is read at each tap (a server forked from a warm parent sets it after the import)."""

    def __init__(self) -> None:
        self.seen = 0
        self.pid = 0
        self.lock = threading.Lock()

    def reached(self, point: str) -> None:
        setting = os.environ.get(CRASH_VARIABLE)
        if not setting:
            return
        name, _, count = setting.partition(":")
        if name != point:
            return
        with self.lock:
            if self.pid != os.getpid():
                self.pid, self.seen = os.getpid(), 0
            self.seen += 1
            if self.seen >= (int(count) if count.isdigit() else 1):
                os._exit(17)


_CRASH = _CrashPoint()


# --- owners' routes -----------------------------------------------------------------------


async def _get(request: Request, work: Callable[[UnitOfWork, Principal], Any]) -> Response:
    return await read_json(request, work)


def _rendered(status: int, wire: Callable[[Any], dict[str, Any]]) -> Any:
    return lambda record: (status, wire(record))


@router.post(
    "/v1/devices", status_code=201, openapi_extra=body_docs(DeviceCreate), tags=["devices"]
)
async def register_device(request: Request) -> Response:
    """A user binds a device with its public key and limits."""

    def work(uow: UnitOfWork, p: Principal, b: DeviceCreate) -> Any:
        return devices.register_device(
            uow,
            p,
            kind=b.kind,
            name=b.name,
            public_jwk=b.public_jwk,
            currency=b.currency,
            tap_limit=b.tap_limit,
            daily_limit=b.daily_limit,
        )

    return await post(request, DeviceCreate, work, render=_rendered(201, devices.wire_device))


@router.post(
    "/v1/terminals", status_code=201, openapi_extra=body_docs(TerminalCreate), tags=["devices"]
)
async def register_terminal(request: Request) -> Response:
    """A merchant registers a terminal, a gate or a table tag."""

    def work(uow: UnitOfWork, p: Principal, b: TerminalCreate) -> Any:
        return devices.register_terminal(
            uow, p, kind=b.kind, name=b.name, public_jwk=b.public_jwk, settings=b.settings
        )

    return await post(request, TerminalCreate, work, render=_rendered(201, devices.wire_device))


@router.get("/v1/devices", tags=["devices"])
async def list_devices(request: Request) -> Response:
    """The caller's devices (a user) or terminals (a merchant)."""

    def work(uow: UnitOfWork, p: Principal) -> Any:
        data = [devices.wire_device(d) for d in devices.list_devices(uow, p)]
        return {"object": "list", "url": "/v1/devices", "data": data, "has_more": False}

    return await _get(request, work)


@router.get("/v1/devices/{device_id}", tags=["devices"])
async def get_device(request: Request, device_id: str) -> Response:
    return await _get(
        request, lambda uow, p: devices.wire_device(devices.get_device(uow, p, device_id))
    )


@router.post("/v1/devices/{device_id}/revoke", openapi_extra=body_docs(s.Empty), tags=["devices"])
async def revoke_device(request: Request, device_id: str) -> Response:
    """Revoke a device at once: its confirmations and taps are refused from now."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return devices.revoke(uow, p, device_id)

    return await post(request, s.Empty, work, render=_rendered(200, devices.wire_device))


@router.post(
    "/v1/devices/{device_id}/tokens",
    status_code=201,
    openapi_extra=body_docs(s.Empty),
    tags=["devices"],
)
async def issue_token(request: Request, device_id: str) -> Response:
    """A tap payment token for one of the user's devices (in-person taps only)."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return devices.issue_token(uow, p, device_id)

    return await post(request, s.Empty, work, render=_rendered(201, devices.wire_token))


@router.post(
    "/v1/payment_requests",
    status_code=201,
    openapi_extra=body_docs(PaymentRequestCreate),
    tags=["payment requests"],
)
async def create_payment_request(request: Request) -> Response:
    """A merchant's QR payment request: static, or dynamic with an amount and a deadline."""
    rt = runtime(request)

    def work(uow: UnitOfWork, p: Principal, b: PaymentRequestCreate) -> Any:
        return payment_requests.create(
            uow,
            p,
            amount=b.amount,
            currency=b.currency,
            reference=b.reference,
            expires_in_s=b.expires_in_s,
            secret=rt.secret,
        )

    wire = payment_requests.wire_payment_request
    return await post(request, PaymentRequestCreate, work, render=_rendered(201, wire))


@router.post(
    "/v1/payment_requests/pay",
    status_code=201,
    openapi_extra=body_docs(AgentQrPay),
    tags=["payment requests"],
)
async def pay_payment_request(request: Request) -> Response:
    """An agent pays a QR request under a mandate, as ``POST /v1/payments`` does."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")

    def work(uow: UnitOfWork, p: Principal, b: AgentQrPay) -> Any:
        return payment_requests.pay_with_mandate(
            uow,
            p,
            b.payload,
            b.mandate,
            amount=b.amount,
            secret=rt.secret,
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
        )

    render = _rendered(201, payments.wire_payment)
    return await post(request, AgentQrPay, work, render=render, allow_agents=True)


@router.get("/v1/payment_requests/{request_id}", tags=["payment requests"])
async def get_payment_request(request: Request, request_id: str) -> Response:
    return await _get(
        request,
        lambda uow, p: payment_requests.wire_payment_request(
            payment_requests.get(uow, p, request_id)
        ),
    )


@router.get("/v1/payment_requests/{request_id}/qr.{kind}", tags=["payment requests"])
async def payment_request_qr(request: Request, request_id: str, kind: str) -> Response:
    """The request's QR code, as SVG or PNG, for its merchant to show."""
    if kind not in {"svg", "png"}:
        raise NotFound("the QR code comes as qr.svg or qr.png")
    principal, _version = await authenticated(request)
    store = runtime(request).store
    record = await run_in_threadpool(
        store.run, lambda uow: payment_requests.get(uow, principal, request_id), read_only=True
    )
    if kind == "svg":
        return Response(payment_requests.qr_svg(record.payload), media_type="image/svg+xml")
    return Response(payment_requests.qr_png(record.payload), media_type="image/png")


@router.get("/v1/taps/{tap_id}", tags=["taps"])
async def get_tap(request: Request, tap_id: str) -> Response:
    return await _get(request, lambda uow, p: taps.get_tap(uow, p, tap_id))


@router.get("/v1/tags/{terminal_id}", tags=["taps"])
async def read_tag(request: Request, terminal_id: str) -> Response:
    """Tap to order: what a table tag opens (public: anyone at the table may read it)."""
    refuse_nul(request)
    store = runtime(request).store
    base_url = str(request.base_url).rstrip("/")
    body = await run_in_threadpool(
        store.run, lambda uow: devices.table_tag(uow, terminal_id, base_url), read_only=True
    )
    return json_response(200, json.dumps(body), version=identity.API_VERSION)


# --- device routes ------------------------------------------------------------------------


@router.get("/v1/device", tags=["devices"])
async def whoami(request: Request) -> Response:
    """The signing device itself (its status and limits)."""
    return await device_get(request, lambda uow, d: devices.wire_device(d))


@router.get("/v1/device/approvals", tags=["devices"])
async def device_approvals(request: Request) -> Response:
    """The device's user's pending approvals, for the device to show or read out."""

    def work(uow: UnitOfWork, device: DeviceRecord) -> Any:
        data = devices.pending_approvals(uow, device)
        return {"object": "list", "url": "/v1/device/approvals", "data": data, "has_more": False}

    return await device_get(request, work)


@router.post(
    "/v1/device/approvals/{approval_id}/confirm",
    openapi_extra=body_docs(ApprovalConfirm),
    tags=["devices"],
)
async def confirm_approval(request: Request, approval_id: str) -> Response:
    """The device's signed confirmation counts as its user's approval."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")

    def work(uow: UnitOfWork, device: DeviceRecord, b: ApprovalConfirm) -> dict[str, Any]:
        confirmed, approval = devices.confirm_approval(
            uow,
            device,
            approval_id,
            b.confirmation.domain(),
            b.signature,
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
        )
        body = devices.wire_confirmation(confirmed)
        return {**body, "approval": approvals.wire_approval(approval)}

    return await device_post(request, ApprovalConfirm, work)


@router.post(
    "/v1/device/payment_requests/pay",
    openapi_extra=body_docs(DeviceQrPay),
    tags=["devices"],
)
async def device_pay(request: Request) -> Response:
    """The device pays a scanned QR request on its user's confirmation."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")

    def work(uow: UnitOfWork, device: DeviceRecord, b: DeviceQrPay) -> dict[str, Any]:
        confirmed = payment_requests.pay_with_device(
            uow,
            device,
            b.payload,
            b.confirmation.domain(),
            b.signature,
            amount=b.amount,
            secret=rt.secret,
            master_key=rt.master_key,
            issuer=issuer,
        )
        return devices.wire_confirmation(confirmed)

    return await device_post(request, DeviceQrPay, work)


@router.post("/v1/device/taps", openapi_extra=body_docs(TapSubmit), tags=["taps"])
async def submit_tap(request: Request) -> Response:
    """A terminal or gate submits a tap; the identical message always answers the same."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")

    def work(uow: UnitOfWork, terminal: DeviceRecord, b: TapSubmit) -> dict[str, Any]:
        if not terminal.is_terminal:
            raise PermissionDenied("only a merchant's terminal or gate submits taps")
        return taps.submit(
            uow,
            terminal,
            TapData(**b.tap.model_dump()),
            b.cryptogram,
            master_key=rt.master_key,
            issuer=issuer,
        )

    return await device_post(request, TapSubmit, work, crash=True)
