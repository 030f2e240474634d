"""Invitation and activation (journeys J1 and J2), driven as a user would:
links and codes come from the development outbox."""

from __future__ import annotations

import re
from http import HTTPStatus

import pyotp
import pytest

from idp import clock
from idp.services.accounts import UserProfile
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import follow
from tests.flows import form_post
from tests.flows import query
from tests.flows import totp_key

PORTAL_LOGIN = "http://localhost:8000/login"
GOOD_PASSWORD = "Solsikke#Have42"


@pytest.fixture
def portal(factory):  # type: ignore[no-untyped-def]
    return factory.client(
        "portal", display_name="Customer Portal UAT", initiate_login_uri=PORTAL_LOGIN
    )


@pytest.fixture
def invite(app, portal):  # type: ignore[no-untyped-def]
    """Invite ``email`` the way ``idp users invite`` does; returns the link from the e-mail."""

    def run(email: str = "kim.kimsen@example.com", **profile: str) -> str:
        from idp.db import get_session
        from idp.invitations import invite as send_invitation

        profile.setdefault("name", "Kim Kimsen")
        profile.setdefault("given_name", "Kim")
        with app.app_context():
            send_invitation(get_session(), email, UserProfile(**profile), "portal")
        return last_link(app, email)

    return run


def outbox(app):  # type: ignore[no-untyped-def]
    return app.extensions["idp"].mailer.messages()


def last_link(app, email: str) -> str:  # type: ignore[no-untyped-def]
    message = next(m for m in outbox(app) if m.to == email)
    return next(link for link in message.links() if "/activate/" in link)


def sms_texts(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        m["text"] if isinstance(m, dict) else m.text
        for m in app.extensions["idp"].sms_sender.messages()
    ]


def path(link: str) -> str:
    return link.removeprefix("http://localhost")


def post(client, response, data):  # type: ignore[no-untyped-def]
    """Submit the form of ``response`` (its page) with ``data``."""
    page = client.get(response.request.path + "?" + response.request.query_string.decode())
    action = re.search(r'<form method="post" action="([^"]+)"', page.get_data(as_text=True)).group(
        1
    )
    return client.post(action.replace("&amp;", "&"), data={"csrf_token": csrf_token(page), **data})


def start(client, link):  # type: ignore[no-untyped-def]
    response = client.get(path(link))
    assert response.status_code == HTTPStatus.FOUND
    return client.get(response.location)


def enrol_to_sms_step(client, link):  # type: ignore[no-untyped-def]
    page = start(client, link)
    page = follow(
        client, form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD})
    )
    return follow(client, form_post(client, page, {"code": pyotp.TOTP(totp_key(page)).now()}))


def test_invitation_email_has_the_activate_button_in_html_and_text(app, invite):
    link = invite()
    (message,) = outbox(app)
    assert message.to == "kim.kimsen@example.com"
    assert message.sender == "Login <no-reply@localhost>"
    assert message.subject == "Velkommen til Customer Portal UAT – aktiver din konto"
    assert "Aktiver konto" in message.html
    assert "background:#1f7a4d" in message.html
    assert f'href="{link}"' in message.html
    assert link in message.text
    assert link.startswith("http://localhost/activate/")


def test_invitation_is_in_the_users_language(app, invite):
    invite("ann@example.com", locale="en", given_name="Ann")
    (message,) = outbox(app)
    assert message.subject == "Welcome to Customer Portal UAT – activate your account"
    assert "Activate account" in message.html


def test_j1_activation_enrols_totp_sms_and_emergency_code_and_lands_logged_in(app, client, invite):
    link = invite()
    page = start(client, link)
    html = page.get_data(as_text=True)
    assert "<h1>Customer Portal UAT</h1>" in html
    assert "Indtast din nye adgangskode" in html
    assert "Log ind uden adgangskode" in html

    page = follow(
        client, form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD})
    )
    html = page.get_data(as_text=True)
    assert "<svg" in html
    key = totp_key(page)
    assert len(key) == 32

    page = follow(client, form_post(client, page, {"code": pyotp.TOTP(key).now()}))
    assert "Aktivér SMS for totrinsbekræftelse" in page.get_data(as_text=True)

    page = follow(client, form_post(client, page, {"phone": "42 82 21 60", "action": "send"}))
    assert "+4542822160" in page.get_data(as_text=True)
    (text,) = sms_texts(app)
    code = re.search(r"\b(\d{6})\b", text).group(1)

    page = follow(client, form_post(client, page, {"code": code, "action": "verify"}))
    html = page.get_data(as_text=True)
    assert "Gem din engangskode til nødsituationer" in html
    emergency = re.search(r'id="emergency-code">([^<]+)<', html).group(1)
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){4}", emergency)

    page = follow(client, form_post(client, page, {"saved": "yes"}))
    assert "Totrinsbekræftelse aktiveret" in page.get_data(as_text=True)
    landed = form_post(client, page, {})
    assert landed.status_code == HTTPStatus.FOUND
    assert landed.location == PORTAL_LOGIN
    assert "idp_session=" in landed.headers["Set-Cookie"]

    subjects = [m.subject for m in outbox(app)]
    assert "Telefonnummer til SMS tilføjet" in subjects
    assert "Totrinsbekræftelse er slået til" in subjects

    # The portal's login now completes without a prompt, as two factors.
    response = authorize(client, authorize_params("portal", Pkce.new()))
    assert "code" in query(response.location)


def test_every_failed_password_rule_is_named(client, invite):
    page = start(client, invite())
    cases = {
        "kort": "mindst 8 tegn",
        "alllowercase#1": "stort bogstav",
        "NoSpecialChars1": "specialtegn",
        "P@ssw0rd": "for almindelig",
        "Kim.Kimsen#2026": "e-mailadresse",
    }
    for password, message in cases.items():
        answer = form_post(client, page, {"password": password, "confirm": password})
        assert answer.status_code == HTTPStatus.BAD_REQUEST, password
        assert message in answer.get_data(as_text=True), password
    mismatch = form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD + "x"})
    assert "De to adgangskoder er ikke ens" in mismatch.get_data(as_text=True)


def test_wrong_totp_code_is_refused(client, invite):
    page = start(client, invite())
    page = follow(
        client, form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD})
    )
    key = totp_key(page)
    wrong = str((int(pyotp.TOTP(key).now()) + 1) % 1_000_000).zfill(6)
    answer = form_post(client, page, {"code": wrong})
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert "Koden er ikke korrekt" in answer.get_data(as_text=True)


def test_enrolment_code_cannot_be_used_again_to_log_in(app, client, invite):
    from idp.db import get_session
    from idp.services import totp

    page = start(client, invite())
    page = follow(
        client, form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD})
    )
    code = pyotp.TOTP(totp_key(page)).now()
    follow(client, form_post(client, page, {"code": code}))
    user = app.extensions["idp"].accounts.find("kim.kimsen@example.com")
    with app.app_context(), pytest.raises(totp.CodeReusedError):
        app.extensions["idp"].factors.verify_totp(get_session(), user.id, code)


def test_sms_step_can_be_skipped(client, invite):
    page = enrol_to_sms_step(client, invite())
    page = follow(client, form_post(client, page, {"action": "skip"}))
    assert "Gem din engangskode til nødsituationer" in page.get_data(as_text=True)


def test_invalid_phone_number_is_refused(client, invite):
    page = enrol_to_sms_step(client, invite())
    answer = form_post(client, page, {"phone": "12", "action": "send"})
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert "ikke et gyldigt telefonnummer" in answer.get_data(as_text=True)


def test_wrong_sms_code_locks_the_challenge_after_five_attempts(app, client, invite):
    page = enrol_to_sms_step(client, invite())
    page = follow(client, form_post(client, page, {"phone": "+4542822160", "action": "send"}))
    (text,) = sms_texts(app)
    code = re.search(r"\b(\d{6})\b", text).group(1)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    for left in (4, 3, 2, 1):
        answer = form_post(client, page, {"code": wrong, "action": "verify"})
        assert f"{left} forsøg tilbage" in answer.get_data(as_text=True)
    locked = form_post(client, page, {"code": wrong, "action": "verify"})
    assert locked.status_code == HTTPStatus.BAD_REQUEST
    assert "Send en ny" in locked.get_data(as_text=True)
    # The locked code no longer works, even when right.
    again = form_post(client, page, {"code": code, "action": "verify"})
    assert again.status_code == HTTPStatus.BAD_REQUEST


def test_sms_provider_down_gives_a_clear_error(app, client, invite, monkeypatch):
    from idp.services.sms import HttpSmsSender

    services = app.extensions["idp"]
    monkeypatch.setattr(
        services.sms,
        "sender",
        HttpSmsSender("http://127.0.0.1:9/sms", "token", timeout_seconds=0.5, retries=1),
    )
    page = enrol_to_sms_step(client, invite())
    answer = form_post(client, page, {"phone": "+4542822160", "action": "send"})
    assert answer.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Vi kunne ikke sende SMS&#39;en lige nu" in answer.get_data(as_text=True)


def test_next_without_the_checkbox_is_refused(app, client, invite):
    page = enrol_to_sms_step(client, invite())
    page = follow(client, form_post(client, page, {"action": "skip"}))
    code = re.search(r'id="emergency-code">([^<]+)<', page.get_data(as_text=True)).group(1)
    answer = form_post(client, page, {})
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert "Sæt flueben" in answer.get_data(as_text=True)
    assert code in answer.get_data(as_text=True)  # the same code, still unsaved


def test_steps_cannot_be_opened_out_of_order(client, invite):
    page = start(client, invite())
    flow = query(page.request.path + "?" + page.request.query_string.decode())["flow"]
    for step in ("totp", "sms", "sms/code", "emergency-code", "finished"):
        response = client.get(f"/activate/{step}?flow={flow}")
        assert response.status_code == HTTPStatus.BAD_REQUEST, step
        assert "Start venligst forfra" in response.get_data(as_text=True)


def test_flow_from_another_browser_is_refused(app, client, invite):
    page = start(client, invite())
    url = page.request.path + "?" + page.request.query_string.decode()
    other = app.test_client()
    assert other.get(url).status_code == HTTPStatus.BAD_REQUEST


def test_expired_link_offers_a_new_one_without_revealing_accounts(app, client, invite, monkeypatch):
    link = invite()
    later = clock.now() + 24 * 3600 + 1
    monkeypatch.setattr(clock, "now", lambda: later)
    page = client.get(path(link))
    assert page.status_code == HTTPStatus.BAD_REQUEST
    assert "Linket er udløbet" in page.get_data(as_text=True)

    known = form_post(client, page, {"email": "kim.kimsen@example.com"})
    unknown = form_post(client, page, {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == HTTPStatus.OK
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    app.extensions["idp"].background.wait()  # the e-mail goes out after the answer
    fresh = last_link(app, "kim.kimsen@example.com")
    assert fresh != link
    assert client.get(path(fresh)).status_code == HTTPStatus.FOUND


def test_used_link_is_refused(client, app, invite):
    link = invite()
    page = start(client, link)
    follow(client, form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD}))
    again = app.test_client().get(path(link))
    assert again.status_code == HTTPStatus.BAD_REQUEST
    assert "Linket er allerede brugt" in again.get_data(as_text=True)


def test_link_requests_are_rate_limited(client, invite):
    link = invite()
    page = client.get(path(link) + "x")
    for _ in range(3):
        assert (
            form_post(client, page, {"email": "kim.kimsen@example.com"}).status_code
            == HTTPStatus.OK
        )
    limited = form_post(client, page, {"email": "kim.kimsen@example.com"})
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(limited.headers["Retry-After"]) > 0


def test_j2_existing_account_with_factors_only_sets_the_password(app, client, invite):
    from idp.db import get_session
    from idp.models import TotpCredential

    page = enrol_to_sms_step(client, invite())
    follow(client, form_post(client, page, {"action": "skip"}))

    link = invite()  # a second product invites the same person
    browser = app.test_client()
    page = start(browser, link)
    page = follow(
        browser,
        form_post(browser, page, {"password": "Ny-Adgangskode#7", "confirm": "Ny-Adgangskode#7"}),
    )
    html = page.get_data(as_text=True)
    assert "Din adgangskode er gemt" in html
    with app.app_context():
        assert get_session().query(TotpCredential).count() == 1
    landed = form_post(browser, page, {})
    assert landed.location == PORTAL_LOGIN
    assert "idp_session" not in landed.headers.get("Set-Cookie", "")


def test_language_switch_changes_the_page_language(client, invite):
    page = start(client, invite())
    url = page.request.path + "?" + page.request.query_string.decode()
    switched = client.get("/language/en?next=" + url.replace("&", "%26").replace("?", "%3F"))
    assert switched.status_code == HTTPStatus.FOUND
    english = client.get(switched.location)
    assert "Enter your new password" in english.get_data(as_text=True)


def test_totp_secret_is_encrypted_at_rest(app, client, invite):
    from idp.db import get_session
    from idp.models import TotpCredential

    page = start(client, invite())
    page = follow(
        client, form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD})
    )
    key = totp_key(page)
    follow(client, form_post(client, page, {"code": pyotp.TOTP(key).now()}))
    with app.app_context():
        (credential,) = get_session().query(TotpCredential).all()
        assert key not in credential.secret_encrypted
        assert app.extensions["idp"].secret_box.decrypt(credential.secret_encrypted) == key


def test_flow_expires_with_a_start_again_page(client, invite, monkeypatch):
    page = start(client, invite())
    later = clock.now() + 15 * 60
    monkeypatch.setattr(clock, "now", lambda: later)
    answer = form_post(client, page, {"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD})
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert "Start venligst forfra" in answer.get_data(as_text=True)


def test_development_outbox_lists_mail_and_sms_with_links(app, client, invite):
    link = invite()
    page = enrol_to_sms_step(client, link)
    form_post(client, page, {"phone": "+4542822160", "action": "send"})
    outbox_page = client.get("/dev/outbox").get_data(as_text=True)
    assert f'<a href="{link}">' in outbox_page
    assert "Velkommen til Customer Portal UAT" in outbox_page
    assert "Din bekræftelseskode er" in outbox_page


def test_passkey_choice_is_not_a_dead_end(client, invite):
    page = start(client, invite())
    url = page.request.path + "?" + page.request.query_string.decode()
    passkey = client.get(url.replace("/activate/password", "/activate/passkey"))
    assert passkey.status_code == HTTPStatus.OK
    assert url in passkey.get_data(as_text=True).replace("&amp;", "&")
