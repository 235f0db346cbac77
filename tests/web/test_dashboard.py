"""The user's dashboard through its real forms (in-process app, both backends): password
sign-in, server-side sessions, CSRF, the pages' contents, mandate controls, receipts, data
export and erasure, languages — and no page ever shows one user another user's objects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.services import receipts, web_access
from paywarden.store import schema
from paywarden.store.tables_web import user_passwords
from paywarden.web.i18n import MESSAGES
from web_support import PASSWORD, Browser, Shop, csrf_of, person, shop


def _audit_types(api: Api) -> list[str]:
    a = schema.audit_records
    rows = api.store.run(lambda uow: list(uow.execute(select(a.c.event_type))), read_only=True)
    return [row.event_type for row in rows]


def test_password_sign_in_shows_the_home_page(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    world.pay(1_250)
    home = world.owner.browser.get("/home")
    assert home.status_code == 200, home.text
    assert "987.50 USD" in home.text  # 1,000.00 funded, 12.50 paid
    assert 'id="spending-chart"' in home.text
    assert "12.50 USD / 200.00 USD (weekly limit)" in home.text
    assert world.owner.browser.get("/").headers["location"] == "/home"


def test_a_wrong_password_or_unknown_email_is_refused_alike(api: Api) -> None:
    owner = person(api, signed_in=False)
    wrong = owner.browser.sign_in(owner.user["email"], "not the password")
    unknown = Browser(api).sign_in("nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "That email and password do not match." in wrong.text
    assert "That email and password do not match." in unknown.text
    assert _audit_types(api).count("web.sign_in_failed") == 2
    assert owner.browser.get("/home").status_code == 303  # still signed out


def test_signing_out_ends_the_session_on_the_server(api: Api) -> None:
    owner = person(api)
    stolen = list(owner.browser.cookies)
    token = csrf_of(owner.browser.get("/home").text)
    assert owner.browser.post("/signout", {"csrf_token": token}).status_code == 303
    thief = Browser(api, stolen)
    assert thief.get("/home").headers["location"].startswith("/signin")


def test_a_planted_session_id_is_worthless_after_sign_in(api: Api) -> None:
    owner = person(api, signed_in=False)
    owner.browser.csrf("/signin")  # the anonymous session the attacker planted
    planted = list(owner.browser.cookies)
    assert owner.browser.sign_in(owner.user["email"]).status_code == 303
    assert [c.value for c in owner.browser.cookies] != [c.value for c in planted]
    assert Browser(api, planted).get("/home").status_code == 303


def test_a_new_password_ends_other_password_sessions(api: Api) -> None:
    owner = person(api)
    laptop = Browser(api)
    assert laptop.sign_in(owner.user["email"]).status_code == 303
    token = csrf_of(owner.browser.get("/settings").text)
    changed = owner.browser.post(
        "/settings/password", {"csrf_token": token, "password": "a brand new secret"}
    )
    assert changed.headers["location"] == "/settings?saved=1"
    assert laptop.get("/home").status_code == 303
    assert Browser(api).sign_in(owner.user["email"], PASSWORD).status_code == 401
    assert Browser(api).sign_in(owner.user["email"], "a brand new secret").status_code == 303


def test_a_short_password_is_refused(api: Api) -> None:
    owner = person(api)
    token = csrf_of(owner.browser.get("/settings").text)
    refused = owner.browser.post("/settings/password", {"csrf_token": token, "password": "short"})
    assert refused.status_code == 400
    assert "10 to 200 characters" in refused.text


def test_sign_out_everywhere(api: Api) -> None:
    owner = person(api)
    phone = Browser(api)
    assert phone.sign_in(owner.user["email"]).status_code == 303
    token = csrf_of(owner.browser.get("/settings").text)
    assert owner.browser.post("/settings/sessions/end", {"csrf_token": token}).status_code == 303
    assert phone.get("/home").status_code == 303
    assert owner.browser.get("/home").status_code == 303


def test_every_form_post_needs_the_sessions_csrf_token(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    other = person(api)
    foreign = csrf_of(other.browser.get("/home").text)
    posts = [
        f"/mandates/{world.mandate}/state",
        f"/mandates/{world.mandate}/amend",
        "/settings/password",
        "/settings/sessions/end",
        "/privacy/erase",
        "/signout",
    ]
    for path in posts:
        for token in ("", foreign):
            refused = world.owner.browser.post(
                path, {"csrf_token": token, "action": "revoke", "confirm": "DELETE"}
            )
            assert refused.status_code == 403, (path, refused.status_code)
    assert api.get(f"/v1/mandates/{world.mandate}", world.owner.key).json()["status"] == "active"
    assert world.owner.browser.get("/home").status_code == 200


def _mandate_action(world: Shop, action: str) -> Any:
    page = world.owner.browser.get(f"/mandates/{world.mandate}")
    return world.owner.browser.post(
        f"/mandates/{world.mandate}/state", {"csrf_token": csrf_of(page.text), "action": action}
    )


def test_pause_resume_and_revoke_from_the_mandate_page(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    assert _mandate_action(world, "pause").status_code == 303
    assert world.pay(500)["status"] == "declined"
    assert _mandate_action(world, "resume").status_code == 303
    assert world.pay(500)["status"] == "succeeded"
    assert _mandate_action(world, "revoke").status_code == 303
    refused = world.pay(500)
    assert refused["status"] == "declined" and "mandate_not_active" in refused["reasons"]
    page = world.owner.browser.get(f"/mandates/{world.mandate}")
    assert 'id="mandate-status">revoked' in page.text
    assert "/state" not in page.text  # no buttons left on a revoked mandate


def test_amending_the_limits_asks_for_consent_again(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    page = world.owner.browser.get(f"/mandates/{world.mandate}")
    assert 'value="200.00"' in page.text
    changed = world.owner.browser.post(
        f"/mandates/{world.mandate}/amend",
        {"csrf_token": csrf_of(page.text), "limit_0": "75.50"},
    )
    assert changed.headers["location"] == f"/mandates/{world.mandate}/consent"
    mandate = api.get(f"/v1/mandates/{world.mandate}", world.owner.key).json()
    assert mandate["status"] == "pending_consent"
    assert mandate["constraints"][0]["max"] == 7_550
    bad = world.owner.browser.post(
        f"/mandates/{world.mandate}/amend",
        {"csrf_token": csrf_of(page.text), "limit_0": "1.234"},
    )
    assert bad.status_code == 400


def test_approvals_are_listed_and_counted(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    asked = world.pay(9_000)
    home = world.owner.browser.get("/home")
    assert 'id="pending-count"' in home.text and 'id="approvals-notice"' in home.text
    listed = world.owner.browser.get("/approvals")
    assert f"/approvals/{asked['approval']}" in listed.text
    assert "90.00 USD" in listed.text


def test_the_receipt_downloads_and_verifies(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    paid = world.pay(1_000)
    listed = world.owner.browser.get("/payments")
    assert f"/payments/{paid['id']}/receipt" in listed.text
    download = world.owner.browser.get(f"/payments/{paid['id']}/receipt")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    verified = api.store.run(lambda uow: receipts.verify(uow, download.text.strip()))
    assert verified is not None


def test_export_and_erase_my_data(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    exported = world.owner.browser.get("/privacy/export")
    assert exported.status_code == 200
    assert world.owner.user["email"] in exported.text
    page = world.owner.browser.get("/privacy")
    unconfirmed = world.owner.browser.post(
        "/privacy/erase", {"csrf_token": csrf_of(page.text), "confirm": "delete"}
    )
    assert unconfirmed.status_code == 400
    erased = world.owner.browser.post(
        "/privacy/erase", {"csrf_token": csrf_of(page.text), "confirm": "DELETE"}
    )
    assert erased.status_code == 303
    assert world.pay(500)["status"] in {"declined"}
    assert api.get(f"/v1/mandates/{world.mandate}", world.owner.key).status_code == 401
    # Erased means signed out everywhere, the password hash gone with the person.
    after = world.owner.browser.get("/home")
    assert after.status_code == 303 and after.headers["location"].startswith("/signin")
    assert world.owner.browser.sign_in(world.owner.user["email"]).status_code != 303
    hashes = api.store.run(
        lambda uow: uow.execute(
            select(user_passwords).where(user_passwords.c.user_id == world.owner.id)
        ).all(),
        read_only=True,
    )
    assert hashes == []


def test_the_pages_speak_chinese_when_asked(api: Api) -> None:
    owner = person(api)
    chinese = owner.browser.get("/home", **{"accept-language": "zh-CN,zh;q=0.9"})
    assert "首页" in chinese.text and 'lang="zh"' in chinese.text
    switched = owner.browser.get("/lang/en?next=/home")
    assert switched.headers["location"] == "/home"
    english = owner.browser.get("/home", **{"accept-language": "zh-CN"})
    assert "Home" in english.text  # the cookie wins over the header
    assert owner.browser.get("/lang/en?next=https://evil.example").headers["location"] == "/"


def test_both_languages_have_every_message() -> None:
    assert MESSAGES["en"].keys() == MESSAGES["zh"].keys()


def test_password_hashes_are_salted_and_verify() -> None:
    one, two = web_access.hash_password("same password"), web_access.hash_password("same password")
    assert one != two and one.startswith("scrypt$15$8$1$")
    assert web_access.check_password("same password", one)
    assert not web_access.check_password("other password", one)
    assert not web_access.check_password("same password", "scrypt$99$8$1$AA$AA")
    assert not web_access.check_password("same password", "garbage")


@pytest.mark.parametrize("path", ["/home", "/mandates", "/approvals", "/payments", "/privacy"])
def test_pages_need_sign_in(api: Api, path: str) -> None:
    redirected = Browser(api).get(path)
    assert redirected.status_code == 303
    assert redirected.headers["location"] == f"/signin?next={path}"
