"""The trusted surface: server-rendered pages where the user, never the agent, decides.

- ``GET /signin``, ``POST /signin``: the user enters their secret key once; the server checks
  it and sets a signed session cookie (a new session id). ``POST /signout`` ends it.
- Passkeys (WebAuthn, ``static/passkeys.js`` drives the browser's side): JSON ceremonies
  ``POST /passkeys/register/{begin,finish}`` for a signed-in user and
  ``POST /passkeys/signin/{begin,finish}`` before sign-in, each checked for the page's
  ``Origin`` and the session's CSRF token (``X-CSRF-Token``); a challenge is bound to the
  session that asked for it. ``POST /settings/passkeys/{id}/remove`` removes one.
- ``GET /mandates/{id}/consent``: the agent asking (name, platform, key thumbprints), the
  constraints in plain words, and the conversation excerpt the agent sent; Consent and
  Decline buttons. ``POST`` to the same path with ``decision=consent|decline`` grants the
  mandate (``services.mandates.consent``) or refuses it (``services.mandates.revoke``).
- ``GET /approvals/{id}``: a payment that needs the user's confirmation (amount, payee, why,
  cart hash, agent, mandate, excerpt, expiry); ``POST`` with ``decision=approve|decline`` and
  the ``binding_hash`` shown calls ``services.approvals.approve`` or ``decline``. Above the
  approval's re-authentication level the form asks for the user's secret key again.

Only the mandate's own user sees the page; anyone else gets 404. Every form carries a CSRF
token bound to the session; a POST without a valid one is 403.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from paywarden.api.http import runtime
from paywarden.authorization.constraints import AllowedPayees
from paywarden.authorization.mandates import MandateStatus
from paywarden.kernel.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from paywarden.kernel.money import format_amount
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import (
    approvals,
    dashboard,
    identity,
    mandates,
    passkeys,
    payments,
    web_access,
)
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.web import i18n, pages
from paywarden.web.console import router as console_router
from paywarden.web.dashboard import router as dashboard_router
from paywarden.web.operator import router as operator_router
from paywarden.web.session import Session, anonymous, signed_in
from paywarden.web.wording import describe_all

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_STATUS_WORDS = {
    MandateStatus.ACTIVE: "You consented. The agent may now pay within these limits.",
    MandateStatus.PAUSED: "This mandate is paused.",
    MandateStatus.REVOKED: "This mandate is revoked: the agent may not pay under it.",
    MandateStatus.EXPIRED: "This mandate has expired.",
    MandateStatus.EXHAUSTED: "This mandate is used up.",
}


@router.get("/static/paywarden.css")
def stylesheet() -> Response:
    return Response(
        pages.stylesheet(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def _script(name: str) -> Response:
    return Response(
        pages.static_text(name),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/static/console.js")
def console_script() -> Response:
    return _script("console.js")


@router.get("/static/passkeys.js")
def passkeys_script() -> Response:
    return _script("passkeys.js")


# --- sign-in ------------------------------------------------------------------------------


def _sign_in_page(
    request: Request,
    session: Session,
    next_path: str | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "title": "Sign in",
        "next": pages.safe_next(next_path) or "",
        "error": error,
        "user": session.user,
    }
    response = pages.render(request, "signin.html", context, session=session, status=status)
    pages.set_session(request, response, session)
    return response


@router.get("/signin")
async def sign_in_form(request: Request) -> Response:
    """The sign-in form; a browser without a session gets an anonymous one for its CSRF."""
    session = pages.web_session(request) or anonymous(runtime(request).store.clock.now())
    return _sign_in_page(request, session, request.query_params.get("next"))


def _password_sign_in(uow: UnitOfWork, email: str, password: str) -> tuple[str, bool] | None:
    if not email or not password or len(password) > web_access.PASSWORD_LENGTH_MAX:
        return None
    return web_access.password_sign_in(uow, email, password)


_KEY_SESSIONS = {
    PrincipalType.USER: ("user", "/home"),
    PrincipalType.MERCHANT: ("merchant", "/merchant"),
    PrincipalType.ADMIN: ("admin", "/operator"),
}


def _key_sign_in(uow: UnitOfWork, secret: str) -> Principal | None:
    """A user's key, a merchant's (the console) or the admin's (the operator view); an agent
    platform's key signs no one in."""
    try:
        principal = identity.authenticate(uow, secret)
    except AuthenticationFailed:
        return None
    return principal if principal.type in _KEY_SESSIONS else None


@dataclass(frozen=True, slots=True)
class _Who:
    kind: PrincipalType
    principal_id: str | None
    livemode: bool
    key_id: str | None
    api_version: str


async def _who(request: Request, form: pages.Form) -> _Who | str:
    """Who the sign-in form names, or the error to show."""
    store = runtime(request).store
    secret = (form.get("secret_key") or "").strip()
    if secret:
        principal = await run_in_threadpool(store.run, lambda uow: _key_sign_in(uow, secret))
        if principal is None:
            return "That is not a valid secret key."
        return _Who(
            principal.type,
            principal.id,
            principal.livemode,
            principal.key_id,
            principal.api_version,
        )
    email = (form.get("email") or "").strip()
    password = form.get("password") or ""
    found = await run_in_threadpool(store.run, lambda uow: _password_sign_in(uow, email, password))
    if found is None:
        return i18n.translator(i18n.language(request))("signin.bad_password")
    return _Who(PrincipalType.USER, found[0], found[1], None, identity.API_VERSION)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    """Sign in with an email and password, or with a user's (or the admin's) secret key;
    either way a new session id (a planted one is worthless) and a server-side session row."""
    session = pages.web_session(request)
    form = await pages.read_form(request)
    if not pages.csrf_ok(request, session, form):
        return pages.error_page(request, 403, "Refused", "The form expired. Reload and retry.")
    assert session is not None
    who = await _who(request, form)
    if isinstance(who, str):
        return _sign_in_page(request, session, form.get("next"), error=who, status=401)
    _role, landing = _KEY_SESSIONS[who.kind]
    fresh = await _open_session(request, who)
    response = pages.redirect(pages.safe_next(form.get("next")) or landing)
    pages.set_session(request, response, fresh)
    return response


async def _open_session(request: Request, who: _Who, passkey_id: str | None = None) -> Session:
    """A new session id and its server-side row (the caller sets the cookie)."""
    store = runtime(request).store
    role, _landing = _KEY_SESSIONS[who.kind]
    fresh = signed_in(
        store.clock.now(),
        user=who.principal_id,
        key_id=who.key_id,
        livemode=who.livemode,
        api_version=who.api_version,
        role=role,
    )
    await run_in_threadpool(
        store.run,
        lambda uow: web_access.start_session(
            uow,
            sid=fresh.sid,
            principal_type=who.kind,
            principal_id=who.principal_id,
            livemode=who.livemode,
            key_id=who.key_id,
            expires_at=datetime.fromtimestamp(fresh.expires, UTC),
            passkey_id=passkey_id,
        ),
    )
    return fresh


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    """End the session: its server-side row first, then the cookie."""
    session = pages.web_session(request)
    form = await pages.read_form(request)
    if not pages.csrf_ok(request, session, form):
        return pages.error_page(request, 403, "Refused", "The form expired. Reload and retry.")
    assert session is not None
    store = runtime(request).store
    await run_in_threadpool(store.run, lambda uow: web_access.end_session(uow, session.sid))
    response = pages.redirect("/signin")
    pages.clear_session(request, response)
    return response


# --- consent ------------------------------------------------------------------------------


def _consent_context(uow: UnitOfWork, user: Principal, mandate_id: str) -> dict[str, Any]:
    """What the page shows; 404 unless ``user`` is the mandate's own user."""
    view = mandates.get_mandate(uow, user, mandate_id)
    mandate = view.mandate
    if mandate.user != user.id:  # the agent or an admin may read it, but not consent here
        raise NotFound(f"no such mandate: {mandate_id}")
    payees = {
        m for c in mandate.constraints if isinstance(c, AllowedPayees) for m in c.merchant_ids
    }
    names = dashboard.merchant_names(uow, payees, view.livemode)
    return {
        "title": "Consent to a mandate",
        "mandate": mandate,
        "pending": mandate.status is MandateStatus.PENDING_CONSENT,
        "status_words": _STATUS_WORDS.get(mandate.status, ""),
        "agent": dashboard.agent_summary(uow, mandate.agent),
        "rules": describe_all(mandate.constraints, timezone=mandate.timezone, names=names),
        "excerpt": view.conversation_excerpt,
        "livemode": view.livemode,
    }


async def _page_user(request: Request) -> tuple[Session | None, Principal | None]:
    session = pages.web_session(request)
    return session, await pages.signed_in_user(request, session)


async def _user_page(
    request: Request,
    template: str,
    context_of: Callable[[UnitOfWork, Principal], dict[str, Any]],
    missing: str,
) -> Response:
    """A page only its signed-in owner sees: sign-in first, 404 for anyone else."""
    session, user = await _page_user(request)
    if user is None:
        return pages.to_sign_in(request)
    store = runtime(request).store
    try:
        context = await run_in_threadpool(
            store.run, lambda uow: context_of(uow, user), read_only=True
        )
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", f"There is no such {missing}.", session=session
        )
    return pages.render(request, template, context, session=session)


@router.get("/mandates/{mandate_id}/consent")
async def consent_page(request: Request, mandate_id: str) -> Response:
    return await _user_page(
        request,
        "consent.html",
        lambda uow, user: _consent_context(uow, user, mandate_id),
        "mandate",
    )


async def _checked_form(
    request: Request,
) -> tuple[Session | None, Principal, pages.Form] | Response:
    """A signed-in, CSRF-checked form POST, or the page that refuses it (CSRF first)."""
    session, user = await _page_user(request)
    form = await pages.read_form(request)
    if not pages.csrf_ok(request, session, form):
        return pages.error_page(request, 403, "Refused", "The form expired. Reload and retry.")
    if user is None:
        return pages.to_sign_in(request)
    return session, user, form


async def _decision_form(
    request: Request, choices: tuple[str, str]
) -> tuple[Session | None, Principal, str, pages.Form] | Response:
    """A signed-in, CSRF-checked form POST choosing one of ``choices``, or the page that
    refuses it (checks in this order: CSRF, sign-in, choice)."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, user, form = checked
    decision = form.get("decision")
    if decision not in choices:
        names = " or ".join(choice.capitalize() for choice in choices)
        return pages.error_page(request, 400, "Bad request", f"Choose {names}.")
    return session, user, str(decision), form


@router.post("/mandates/{mandate_id}/consent")
async def consent_decision(request: Request, mandate_id: str) -> Response:
    checked = await _decision_form(request, ("consent", "decline"))
    if isinstance(checked, Response):
        return checked
    session, user, decision, _form = checked
    store = runtime(request).store
    change = mandates.consent if decision == "consent" else mandates.revoke

    def work(uow: UnitOfWork) -> None:
        _consent_context(uow, user, mandate_id)  # the same 404 as the page
        change(uow, user, mandate_id)

    try:
        await run_in_threadpool(store.run, work)
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such mandate.", session=session
        )
    except Conflict:
        pass  # decided already (another tab): the page shows the mandate as it is now
    return pages.redirect(request.url.path)


# --- approvals ----------------------------------------------------------------------------

_REASON_WORDS = {
    "above_confirmation_threshold": "The amount is above what you said needs your confirmation.",
    "risk_agent_velocity": "The agent is paying unusually often.",
    "risk_mandate_velocity": "This mandate is being used unusually often.",
    "risk_amount_outlier": "The amount is unusual for this mandate.",
    "risk_new_merchant": "The agent has not paid this merchant before.",
    "risk_recent_failures": "Recent payments by this agent failed.",
    "declined_by_user": "You declined it.",
    "approval_expired": "Nobody decided before the deadline.",
    "approval_voided": "The payment changed after it was shown.",
    "insufficient_funds": "There was not enough money in your account.",
}
_OUTCOME_WORDS = {
    "approved": "You approved this payment.",
    "declined": "This payment was declined: no money moved.",
    "expired": "This approval expired: the payment was declined and no money moved.",
    "voided": "The payment changed after it was shown, so it was declined: no money moved.",
}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _approval_context(uow: UnitOfWork, user: Principal, approval_id: str) -> dict[str, Any]:
    """What the approval page shows; 404 unless ``user`` is the approval's own user."""
    record = approvals.get(uow, user, approval_id)
    if record.user_id != user.id:  # the agent or an admin may read it, but not decide here
        raise NotFound(f"no such approval: {approval_id}")
    view = mandates.get_mandate(uow, user, record.mandate_id)
    payment = payments.get_payment(uow, user, record.payment_id)
    names = dashboard.merchant_names(uow, {record.merchant_id}, record.livemode)
    zone = view.mandate.timezone
    return {
        "title": "Approve a payment",
        "approval": record,
        "amount": format_amount(record.amount, record.currency),
        "payee": names.get(record.merchant_id, record.merchant_id),
        "reasons": [_REASON_WORDS.get(r, r.replace("_", " ")) for r in record.reasons],
        "agent": dashboard.agent_summary(uow, record.agent_id),
        "mandate": view.mandate,
        "excerpt": view.conversation_excerpt,
        "expires": f"{record.expires_at.astimezone(_zone(zone)):%Y-%m-%d %H:%M:%S} ({zone})",
        "pending": record.status == "pending",
        "outcome": _OUTCOME_WORDS.get(record.status, record.status),
        "payment": payment,
        "livemode": record.livemode,
    }


def _not_found_approval(request: Request, session: Session | None) -> Response:
    return pages.error_page(
        request, 404, "Not found", "There is no such approval.", session=session
    )


@router.get("/approvals/{approval_id}")
async def approval_page(request: Request, approval_id: str) -> Response:
    return await _user_page(
        request,
        "approval.html",
        lambda uow, user: _approval_context(uow, user, approval_id),
        "approval",
    )


def _reauthenticated(uow: UnitOfWork, user: Principal, secret: str) -> bool:
    """True only when ``secret`` is one of the signed-in user's own live keys."""
    if not secret:
        return False
    try:
        again = identity.authenticate(uow, secret)
    except AuthenticationFailed:
        return False
    return (again.type, again.id, again.livemode) == (user.type, user.id, user.livemode)


@router.post("/approvals/{approval_id}")
async def approval_decision(request: Request, approval_id: str) -> Response:
    checked = await _decision_form(request, ("approve", "decline"))
    if isinstance(checked, Response):
        return checked
    session, user, decision, form = checked
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")
    binding = form.get("binding_hash") or ""
    secret = (form.get("secret_key") or "").strip()

    def work(uow: UnitOfWork) -> None:
        _approval_context(uow, user, approval_id)  # the same 404 as the page
        if decision == "decline":
            approvals.decline(uow, user, approval_id)
            return
        approvals.approve(
            uow,
            user,
            approval_id,
            expected_binding_hash=binding,
            reauthenticated=_reauthenticated(uow, user, secret),
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
        )

    try:
        await run_in_threadpool(rt.store.run, work)
    except NotFound:
        return _not_found_approval(request, session)
    except PermissionDenied:
        return pages.error_page(
            request,
            403,
            "Not approved",
            "That secret key is not yours. Nothing was paid; go back and try again.",
            session=session,
        )
    except Conflict:
        pass  # decided already, or changed since shown: the page shows it as it is now
    return pages.redirect(request.url.path)


# --- passkeys ----------------------------------------------------------------------------

_T = TypeVar("_T")
CSRF_HEADER = "X-CSRF-Token"
CEREMONY_BODY_BYTES_MAX = 16_384


def relying_party(request: Request) -> passkeys.RelyingParty:
    """The RP ID and origin passkeys are bound to: those of ``public_url`` when it is set (a
    server behind a proxy), else this request's own host, scheme and port."""
    public_url = runtime(request).settings.public_url
    url = urlsplit(public_url) if public_url else urlsplit(str(request.base_url))
    host = (url.hostname or "").lower()
    origin = f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")
    return passkeys.RelyingParty(id=host, origin=origin)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = JSONResponse(body, status_code=status)
    response.headers.update(pages.SECURITY_HEADERS)
    return response


def _refusal(request: Request, status: int, key: str) -> Response:
    return _json({"error": i18n.translator(i18n.language(request))(key)}, status)


@dataclass(frozen=True, slots=True)
class _Ceremony:
    session: Session
    digest: str  # the session's id as challenges store it
    rp: passkeys.RelyingParty
    body: dict[str, Any]


async def _ceremony(request: Request) -> _Ceremony | Response:
    """A ceremony's JSON POST from this site's own page: its ``Origin`` must be the relying
    party's, its ``X-CSRF-Token`` the session's, its body a small JSON object."""
    rp = relying_party(request)
    session = pages.web_session(request)
    if request.headers.get("origin") != rp.origin:
        return _refusal(request, 403, "passkey.refused")
    token = pages.Form({pages.CSRF_FIELD: request.headers.get(CSRF_HEADER, "")})
    if session is None or not pages.csrf_ok(request, session, token):
        return _refusal(request, 403, "passkey.refused")
    raw = await request.body()
    try:
        body = json.loads(raw) if len(raw) <= CEREMONY_BODY_BYTES_MAX else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _refusal(request, 400, "passkey.failed")
    return _Ceremony(session, web_access.session_digest(session.sid), rp, body)


async def _finish(
    request: Request,
    ceremony: _Ceremony,
    purpose: passkeys.Purpose,
    finish: Callable[[UnitOfWork, passkeys.Challenge | None, dict[str, Any]], _T],
) -> _T:
    """Take the challenge the posted credential signed (its own transaction: used once,
    whatever follows), then ``finish`` the ceremony with it."""
    store = runtime(request).store
    posted = ceremony.body.get("credential")
    credential: dict[str, Any] = posted if isinstance(posted, dict) else {}
    challenge = await run_in_threadpool(
        store.run,
        lambda uow: passkeys.take_challenge(uow, purpose, ceremony.digest, credential),
    )
    return await run_in_threadpool(store.run, lambda uow: finish(uow, challenge, credential))


async def _ceremony_user(request: Request) -> tuple[_Ceremony, Principal] | Response:
    ceremony = await _ceremony(request)
    if isinstance(ceremony, Response):
        return ceremony
    user = await pages.signed_in_user(request, ceremony.session)
    if user is None:
        return _refusal(request, 401, "passkey.refused")
    return ceremony, user


@router.post("/passkeys/register/begin")
async def passkey_register_begin(request: Request) -> Response:
    checked = await _ceremony_user(request)
    if isinstance(checked, Response):
        return checked
    ceremony, user = checked
    store = runtime(request).store
    try:
        options = await run_in_threadpool(
            store.run,
            lambda uow: passkeys.begin_registration(uow, user, ceremony.rp, ceremony.digest),
        )
    except Conflict:
        return _refusal(request, 409, "passkey.limit")
    return _json({"publicKey": options})


@router.post("/passkeys/register/finish")
async def passkey_register_finish(request: Request) -> Response:
    checked = await _ceremony_user(request)
    if isinstance(checked, Response):
        return checked
    ceremony, user = checked
    name = str(ceremony.body.get("name") or "")
    try:
        added = await _finish(
            request,
            ceremony,
            "register",
            lambda uow, challenge, credential: passkeys.finish_registration(
                uow, user, ceremony.rp, challenge, credential, name
            ),
        )
    except (InvalidRequest, Conflict):
        return _refusal(request, 400, "passkey.failed")
    return _json({"id": added.id, "name": added.name, "location": "/settings?passkey=added"})


@router.post("/passkeys/signin/begin")
async def passkey_sign_in_begin(request: Request) -> Response:
    ceremony = await _ceremony(request)
    if isinstance(ceremony, Response):
        return ceremony
    store = runtime(request).store
    options = await run_in_threadpool(
        store.run, lambda uow: passkeys.begin_authentication(uow, ceremony.rp, ceremony.digest)
    )
    return _json({"publicKey": options})


@router.post("/passkeys/signin/finish")
async def passkey_sign_in_finish(request: Request) -> Response:
    """Sign in with a passkey: like a password sign-in, a new session id and a session row."""
    ceremony = await _ceremony(request)
    if isinstance(ceremony, Response):
        return ceremony
    found = await _finish(
        request,
        ceremony,
        "authenticate",
        lambda uow, challenge, credential: passkeys.finish_authentication(
            uow, ceremony.rp, challenge, credential
        ),
    )
    if found is None:
        return _refusal(request, 401, "passkey.failed")
    who = _Who(PrincipalType.USER, found.user_id, found.livemode, None, identity.API_VERSION)
    fresh = await _open_session(request, who, found.passkey_id)
    target = pages.safe_next(str(ceremony.body.get("next") or "")) or "/home"
    response = _json({"location": target})
    pages.set_session(request, response, fresh)
    return response


@router.post("/settings/passkeys/{passkey_id}/remove")
async def passkey_remove(request: Request, passkey_id: str) -> Response:
    """Remove one of the user's passkeys: refused at once, and its sessions end."""
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    session, user, _form = checked
    store = runtime(request).store
    try:
        await run_in_threadpool(
            store.run, lambda uow: passkeys.remove_passkey(uow, user, passkey_id)
        )
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such passkey.", session=session
        )
    return pages.redirect("/settings?passkey=removed")


# The dashboard pages live in their own module; they share this router's place in the app.
router.include_router(dashboard_router)
router.include_router(operator_router)
router.include_router(console_router)
