"""What every page of the trusted surface shares: templates, the session, CSRF, forms,
security headers and error pages. The consent page uses it; the approval page will too::

    session = web_session(request)                  # verified, or None
    user = await signed_in_user(request, session)   # a user Principal, or None
    if user is None:
        return to_sign_in(request)
    form = await read_form(request)
    if not csrf_ok(request, session, form):         # refused with 403 by the caller
        ...
    return render(request, "consent.html", {...}, session=session)

Pages are server-rendered HTML with no JavaScript; every response is ``no-store`` and may
not be framed (clickjacking a consent button is the attack these pages must not allow).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from paywarden.api.http import runtime
from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import web_access
from paywarden.services.identity import API_VERSION
from paywarden.trust.pan import looks_like_card_number
from paywarden.web import i18n
from paywarden.web.session import COOKIE_NAME, SESSION_TTL, Session, SessionKeys

__all__ = [
    "CSRF_FIELD",
    "Form",
    "csrf_ok",
    "error_page",
    "read_form",
    "render",
    "set_session",
    "signed_in_merchant",
    "signed_in_operator",
    "signed_in_user",
    "stylesheet",
    "to_sign_in",
    "web_session",
]

CSRF_FIELD = "csrf_token"
FORM_FIELDS_MAX = 20
# Secrets a person types that are checked and hashed, never stored as typed.
UNSCREENED_FIELDS = frozenset({"password", "secret_key", CSRF_FIELD})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("paywarden.web", "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def stylesheet() -> str:
    return static_text("paywarden.css")


def static_text(name: str) -> str:
    return resources.files("paywarden.web").joinpath(f"static/{name}").read_text("utf-8")


def _keys(request: Request) -> SessionKeys:
    rt = runtime(request)
    keys: SessionKeys | None = getattr(request.app.state, "web_session_keys", None)
    if keys is None:
        keys = SessionKeys(rt.secret)
        request.app.state.web_session_keys = keys
    return keys


def web_session(request: Request) -> Session | None:
    """The verified session of this request's cookie, or None."""
    now = runtime(request).store.clock.now()
    return _keys(request).open(request.cookies.get(COOKIE_NAME), now)


async def _live(request: Request, session: Session | None) -> web_access.SessionRow | None:
    if session is None or not session.signed_in:
        return None
    store = runtime(request).store
    row = await run_in_threadpool(
        store.run, lambda uow: web_access.live_session(uow, session.sid), read_only=True
    )
    return row


async def signed_in_user(request: Request, session: Session | None) -> Principal | None:
    """The user of a signed-in session whose server-side row is live; else None."""
    row = await _live(request, session)
    if row is None or session is None or row.principal_type is not PrincipalType.USER:
        return None
    if row.principal_id is None or row.principal_id != session.user or session.role != "user":
        return None
    return Principal(
        type=PrincipalType.USER,
        id=row.principal_id,
        livemode=row.livemode,
        key_id=row.key_id or "web-session",
        api_version=session.api_version or API_VERSION,
    )


async def signed_in_merchant(request: Request, session: Session | None) -> Principal | None:
    """The merchant of a console session (signed in with its secret key, still active)."""
    row = await _live(request, session)
    if row is None or session is None or row.principal_type is not PrincipalType.MERCHANT:
        return None
    if session.role != "merchant" or row.principal_id != session.user or row.key_id is None:
        return None
    return Principal(
        type=PrincipalType.MERCHANT,
        id=row.principal_id,
        livemode=row.livemode,
        key_id=row.key_id,
        api_version=session.api_version or API_VERSION,
    )


async def signed_in_operator(request: Request, session: Session | None) -> Principal | None:
    """The admin of an operator session (signed in with the admin key, still active)."""
    row = await _live(request, session)
    if row is None or session is None or row.principal_type is not PrincipalType.ADMIN:
        return None
    if not session.operator or row.key_id is None:
        return None
    return Principal(
        type=PrincipalType.ADMIN,
        id=None,
        livemode=row.livemode,
        key_id=row.key_id,
        api_version=session.api_version or API_VERSION,
    )


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


async def read_form(request: Request) -> Form:
    """An ``application/x-www-form-urlencoded`` body (the first value of each field); any
    other body reads as an empty form, which fails its CSRF check."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return Form({})
    raw = (await request.body()).decode("utf-8", errors="replace")
    try:
        parsed = parse_qs(raw, keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX)
    except ValueError:
        return Form({})
    fields = {name: values[0] for name, values in parsed.items() if "\x00" not in values[0]}
    for name, value in fields.items():  # nothing typed into a page may keep a card number
        if name not in UNSCREENED_FIELDS and looks_like_card_number(value):
            raise InvalidRequest(
                f"the {name} field holds what looks like a card number; paywarden never "
                "stores card numbers",
                code="card_number_in_text",
                param=f"$.{name}",
            )
    return Form(fields)


def csrf_ok(request: Request, session: Session | None, form: Form) -> bool:
    return session is not None and _keys(request).csrf_ok(session, form.get(CSRF_FIELD))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        _keys(request).seal(session),
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE_NAME, path="/", secure=_secure(request), httponly=True, samesite="lax"
    )


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session | None,
    status: int = 200,
) -> Response:
    """A page, with the CSRF token of ``session`` for its forms."""
    token = _keys(request).csrf_token(session) if session is not None else ""
    lang = i18n.language(request)
    page = _templates.get_template(template).render(
        **context,
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        signed_in=session is not None and session.signed_in and session.role == "user",
        operator=session is not None and session.operator,
        merchant=session is not None and session.signed_in and session.role == "merchant",
        lang=lang,
        other_lang="en" if lang == "zh" else "zh",
        t=i18n.translator(lang),
        here=request.url.path,
    )
    return _secured(HTMLResponse(page, status_code=status))


def error_page(
    request: Request, status: int, title: str, message: str, *, session: Session | None = None
) -> Response:
    context = {"title": title, "message": message, "status": status}
    return render(request, "error.html", context, session=session, status=status)


def redirect(location: str) -> Response:
    return _secured(RedirectResponse(location, status_code=303))


def safe_next(target: str | None) -> str | None:
    """A same-site path to return to after sign-in; anything else (another site, a scheme,
    ``//host``, a backslash trick) is dropped."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ch in target for ch in "\\\r\n\t") or len(target) > 500:
        return None
    return target


def to_sign_in(request: Request) -> Response:
    """Send the browser to sign in, then back here."""
    here = request.url.path
    return redirect("/signin?next=" + quote(here, safe="/"))
