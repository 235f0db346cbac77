"""Passkeys (WebAuthn) on SQLite and PostgreSQL, through the routes the page's script uses and
the service beneath them, with a software authenticator (tests/passkey_support.py) whose every
field can be bent: a passkey signs its user in with no email and no password, and each way a
response can be wrong is refused (and audited when it was a sign-in)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from conftest import Api, make_api
from passkey_support import (
    SoftAuthenticator,
    add_passkey,
    ceremony,
    finish_sign_in,
    sign_in_options,
)
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import passkeys, web_access
from paywarden.services.passkeys import CHALLENGE_TTL, RelyingParty
from paywarden.store import schema
from paywarden.store.tables_web import passkeys as passkey_table
from paywarden.store.tables_web import web_sessions, webauthn_challenges
from paywarden.store.unit_of_work import Store
from web_support import Browser, Person, csrf_of, person

RP = RelyingParty(id="testserver", origin="http://testserver")


def _failures(api: Api) -> list[dict[str, Any]]:
    """The data of every failed sign-in and suspected clone, in order."""
    a = schema.audit_records
    rows = api.store.run(
        lambda uow: list(
            uow.execute(
                select(a.c.event_type, a.c.data)
                .where(a.c.event_type.in_(["web.sign_in_failed", "web.passkey_clone_suspected"]))
                .order_by(a.c.occurred_at, a.c.partition, a.c.sequence)
            )
        ),
        read_only=True,
    )
    return [{"type": row.event_type, **row.data} for row in rows]


def _with_passkey(api: Api) -> tuple[Person, SoftAuthenticator, str]:
    owner = person(api)
    authenticator = SoftAuthenticator()
    added = add_passkey(owner.browser, authenticator)
    return owner, authenticator, str(added["id"])


def test_a_passkey_signs_its_user_in_with_no_email_or_password(api: Api) -> None:
    owner, authenticator, passkey_id = _with_passkey(api)
    settings = owner.browser.get("/settings")
    assert passkey_id in settings.text and "Laptop" in settings.text

    stranger = Browser(api)  # a fresh browser: nothing typed, no cookie but the anonymous one
    assert stranger.get("/home").status_code == 303
    anonymous = {c.name: c.value for c in stranger.cookies if c.name == "paywarden_session"}
    signed = finish_sign_in(stranger, authenticator.get(sign_in_options(stranger)), "/settings")
    assert signed.status_code == 200, signed.text
    assert signed.json() == {"location": "/settings"}
    cookie = {c.name: c.value for c in stranger.cookies if c.name == "paywarden_session"}
    assert cookie != anonymous  # a new session id, as with a password
    home = stranger.get("/home")
    assert home.status_code == 200 and owner.user["email"] not in stranger.get("/signin").text

    s = web_sessions
    methods = api.store.run(
        lambda uow: [
            (r.method, r.passkey_id)
            for r in uow.execute(select(s.c.method, s.c.passkey_id).where(s.c.passkey_id != None))  # noqa: E711
        ],
        read_only=True,
    )
    assert methods == [("passkey", passkey_id)]
    used = owner.browser.get("/settings").text
    assert "last used" in used and "not used yet" not in used


def test_a_challenge_is_used_once_and_only_by_the_session_that_asked(api: Api) -> None:
    _owner, authenticator, _ = _with_passkey(api)
    browser = Browser(api)
    assertion = authenticator.get(sign_in_options(browser))
    assert finish_sign_in(browser, assertion).status_code == 200
    replayed = Browser(api)  # the same response again, even from a fresh session
    replayed.csrf()
    assert finish_sign_in(replayed, assertion).status_code == 401
    assert finish_sign_in(browser, assertion).status_code == 401

    asked, other = Browser(api), Browser(api)
    stolen = authenticator.get(sign_in_options(asked))
    assert finish_sign_in(other, stolen).status_code == 401  # another session's challenge
    assert finish_sign_in(asked, stolen).status_code == 401  # spent by the refusal above
    assert [f.get("reason") for f in _failures(api)] == ["challenge"] * 4


def test_an_expired_challenge_is_refused_and_purged(api: Api, clock: FakeClock) -> None:
    _owner, authenticator, _ = _with_passkey(api)
    browser = Browser(api)
    options = sign_in_options(browser)
    clock.advance(CHALLENGE_TTL)
    assert finish_sign_in(browser, authenticator.get(options)).status_code == 401
    sign_in_options(Browser(api))  # a new ceremony purges expired challenges
    clock.advance(CHALLENGE_TTL * 2)
    purged = api.store.run(lambda uow: passkeys.purge_challenges(uow, clock.now()))
    assert purged == 1
    left = api.store.run(
        lambda uow: uow.execute(select(webauthn_challenges.c.id)).all(), read_only=True
    )
    assert left == []


def test_another_origin_or_rp_id_is_refused(api: Api) -> None:
    _owner, authenticator, _ = _with_passkey(api)
    browser = Browser(api)
    # The page of another site cannot start or finish a ceremony here.
    evil = "http://evil.example"
    begun = ceremony(browser, "/passkeys/signin/begin", {}, page="/signin", origin=evil)
    assert begun.status_code == 403
    # A response signed for another origin, or another RP ID, does not verify.
    wrong_origin = authenticator.get(sign_in_options(browser), evil)
    assert finish_sign_in(browser, wrong_origin).status_code == 401
    wrong_rp = authenticator.get(sign_in_options(browser), rp_id="evil.example")
    assert finish_sign_in(browser, wrong_rp).status_code == 401
    port = authenticator.get(sign_in_options(browser), "http://testserver:8443")
    assert finish_sign_in(browser, port).status_code == 401
    assert [f["reason"] for f in _failures(api)] == ["verification"] * 3


def test_user_verification_is_required(api: Api) -> None:
    owner = person(api)
    authenticator = SoftAuthenticator()
    begun = ceremony(owner.browser, "/passkeys/register/begin", {}, page="/settings")
    options = begun.json()["publicKey"]
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    body = {"credential": authenticator.create(options, verified=False), "name": "x"}
    refused = ceremony(owner.browser, "/passkeys/register/finish", body, page="/settings")
    assert refused.status_code == 400
    add_passkey(owner.browser, authenticator)
    browser = Browser(api)
    unverified = authenticator.get(sign_in_options(browser), verified=False)
    assert finish_sign_in(browser, unverified).status_code == 401


def test_a_counter_that_goes_back_is_a_clone_refused_and_audited(api: Api) -> None:
    _owner, authenticator, passkey_id = _with_passkey(api)
    browser = Browser(api)
    assert finish_sign_in(browser, authenticator.get(sign_in_options(browser))).status_code == 200
    seen = authenticator.counter
    clone = authenticator.get(sign_in_options(browser), counter=seen)
    assert finish_sign_in(browser, clone).status_code == 401
    older = authenticator.get(sign_in_options(browser), counter=seen - 1)
    assert finish_sign_in(browser, older).status_code == 401
    failures = _failures(api)
    clones = [f for f in failures if f["type"] == "web.passkey_clone_suspected"]
    assert [(c["passkey"], c["presented_count"]) for c in clones] == [
        (passkey_id, seen),
        (passkey_id, seen - 1),
    ]
    # Moving forward again works: the refusals did not move the stored counter.
    later = authenticator.get(sign_in_options(browser), counter=seen + 1)
    assert finish_sign_in(browser, later).status_code == 200


def test_another_users_passkey_is_neither_theirs_to_remove_nor_to_claim(api: Api) -> None:
    owner, authenticator, passkey_id = _with_passkey(api)
    intruder = person(api)
    token = csrf_of(intruder.browser.get("/settings").text)
    removed = intruder.browser.post(
        f"/settings/passkeys/{passkey_id}/remove", {"csrf_token": token}
    )
    assert removed.status_code == 404
    assert passkey_id not in intruder.browser.get("/settings").text
    # The owner's credential presented with the intruder's user handle is refused.
    browser = Browser(api)
    claimed = authenticator.get(sign_in_options(browser), user_handle=intruder.id.encode("utf-8"))
    assert finish_sign_in(browser, claimed).status_code == 401
    assert _failures(api)[-1]["reason"] == "user_handle"
    # A credential registered already cannot be registered again, by anyone.
    begun = ceremony(intruder.browser, "/passkeys/register/begin", {}, page="/settings")
    again = {"credential": authenticator.create(begun.json()["publicKey"]), "name": "mine"}
    taken = ceremony(intruder.browser, "/passkeys/register/finish", again, page="/settings")
    assert taken.status_code == 400
    assert passkey_id in owner.browser.get("/settings").text


def test_a_removed_passkey_is_refused_at_once_and_its_sessions_end(api: Api) -> None:
    owner, authenticator, passkey_id = _with_passkey(api)
    opened = Browser(api)
    assert finish_sign_in(opened, authenticator.get(sign_in_options(opened))).status_code == 200
    assert opened.get("/home").status_code == 200
    token = csrf_of(owner.browser.get("/settings").text)
    removed = owner.browser.post(f"/settings/passkeys/{passkey_id}/remove", {"csrf_token": token})
    assert (removed.status_code, removed.headers["location"]) == (303, "/settings?passkey=removed")
    assert owner.browser.get("/settings").status_code == 200  # a password session stays
    assert opened.get("/home").status_code == 303  # the passkey's session ended
    browser = Browser(api)
    assert finish_sign_in(browser, authenticator.get(sign_in_options(browser))).status_code == 401
    assert _failures(api)[-1]["reason"] == "unknown_passkey"
    again = owner.browser.post(f"/settings/passkeys/{passkey_id}/remove", {"csrf_token": token})
    assert again.status_code == 404


def test_registration_needs_the_sessions_csrf_token_and_a_signed_in_user(api: Api) -> None:
    owner = person(api)
    other = person(api)
    begin = "/passkeys/register/begin"
    origin = {"Origin": "http://testserver"}
    assert owner.browser.post_json(begin, {}, origin).status_code == 403  # no token
    theirs = {"X-CSRF-Token": other.browser.csrf("/settings")} | origin
    assert owner.browser.post_json(begin, {}, theirs).status_code == 403  # another's token
    assert (
        owner.browser.post(begin, {"csrf_token": owner.browser.csrf("/settings")}).status_code
        == 403
    )
    anonymous = Browser(api)
    assert ceremony(anonymous, begin, {}, page="/signin").status_code == 401
    # A registration challenge does not sign anyone in, nor the other way round.
    authenticator = SoftAuthenticator()
    options = ceremony(owner.browser, begin, {}, page="/settings").json()["publicKey"]
    as_assertion = authenticator.get({"challenge": options["challenge"], "rpId": "testserver"})
    assert finish_sign_in(owner.browser, as_assertion).status_code == 401
    count = api.store.run(lambda uow: uow.execute(select(passkey_table.c.id)).all(), read_only=True)
    assert count == []


def test_service_lists_and_removes_only_the_users_own(api: Api) -> None:
    owner, _authenticator, passkey_id = _with_passkey(api)
    mine = Principal(PrincipalType.USER, owner.id, False, "web-session", "2026-11-29")
    listed = api.store.run(lambda uow: passkeys.list_passkeys(uow, mine), read_only=True)
    assert [(p.id, p.name) for p in listed] == [(passkey_id, "Laptop")]
    stranger = person(api, signed_in=False)
    theirs = Principal(PrincipalType.USER, stranger.id, False, "web-session", "2026-11-29")
    assert api.store.run(lambda uow: passkeys.list_passkeys(uow, theirs), read_only=True) == []
    sid = "s" * 32
    options = api.store.run(
        lambda uow: passkeys.begin_registration(uow, mine, RP, web_access.session_digest(sid))
    )
    assert {c["id"] for c in options["excludeCredentials"]} == {
        row.credential_id
        for row in api.store.run(
            lambda uow: uow.execute(select(passkey_table.c.credential_id)).all(), read_only=True
        )
    }


def test_public_url_names_the_relying_party_behind_a_proxy(sqlite_store: Store) -> None:
    for api in make_api(sqlite_store, public_url="https://pay.example.com"):
        browser = Browser(api)
        refused = ceremony(browser, "/passkeys/signin/begin", {}, page="/signin")
        assert refused.status_code == 403  # the request's own origin is not the public one
        begun = ceremony(
            browser, "/passkeys/signin/begin", {}, page="/signin", origin="https://pay.example.com"
        )
        assert begun.status_code == 200, begun.text
        assert begun.json()["publicKey"]["rpId"] == "pay.example.com"


def test_erasing_the_user_removes_their_passkeys(api: Api) -> None:
    owner, authenticator, _ = _with_passkey(api)
    opened = Browser(api)
    assert finish_sign_in(opened, authenticator.get(sign_in_options(opened))).status_code == 200
    token = csrf_of(owner.browser.get("/privacy").text)
    erased = owner.browser.post("/privacy/erase", {"csrf_token": token, "confirm": "DELETE"})
    assert erased.status_code == 303, erased.text
    assert opened.get("/home").status_code == 303
    browser = Browser(api)
    assert finish_sign_in(browser, authenticator.get(sign_in_options(browser))).status_code == 401
