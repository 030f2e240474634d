"""Logging in (journey J3), driven as a browser would: e-mail first, password,
second factor, "Prøv en anden måde", forgotten password, lockout, sessions."""

from __future__ import annotations

import re
from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
from joserfc import jwt

from idp import clock
from idp.services.flows import FlowError
from tests.backchannel import Receiver
from tests.factories import PASSWORD
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import exchange
from tests.flows import follow
from tests.flows import form_action
from tests.flows import form_post
from tests.flows import is_login_screen
from tests.flows import login_for_code
from tests.flows import query
from tests.flows import screen
from tests.flows import submit_email
from tests.flows import submit_login
from tests.flows import submit_password
from tests.flows import totp_key

PHONE = "+4520123160"
NEW_PASSWORD = "Solsikke#Have42"


@pytest.fixture
def rp(factory):  # type: ignore[no-untyped-def]
    return factory.client(
        "portal", display_name="Customer Portal", initiate_login_uri="http://localhost:8000/login"
    )


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    """An account with a password; tests give it second factors as they need."""
    return factory.user("kim@example.com")


@pytest.fixture
def strict_user(factory):  # type: ignore[no-untyped-def]
    """An account that must have two-step verification."""
    return factory.user("kim@example.com", mfa_required=True)


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def start(client, **extra: str):  # type: ignore[no-untyped-def]
    """An authorization request of the portal; returns its answer, the e-mail
    screen (its form posts to /login?flow=ID)."""
    page = authorize(client, authorize_params("portal", Pkce.new(), **extra))
    assert is_login_screen(page), page.get_data(as_text=True)
    assert form_action(page).startswith("/login?flow="), form_action(page)
    return page


def on_flow(page, path: str) -> str:  # type: ignore[no-untyped-def]
    """The URL of the screen ``path`` in the login flow of ``page`` (a login screen)."""
    return path + "?" + urlsplit(form_action(page)).query


def set_cookie(response, name: str) -> str:  # type: ignore[no-untyped-def]
    """The Set-Cookie header of the cookie ``name`` (an answer may set several)."""
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(name + "=")]
    return cookie


def password_step(client, email: str = "kim@example.com", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return submit_login(client, start(client, prompt="login"), email, password)


def code_step(client, email: str = "kim@example.com"):  # type: ignore[no-untyped-def]
    """The password of an account with an authenticator app: its code screen."""
    page = screen(client, password_step(client, email))
    assert form_action(page).startswith("/login/code?flow="), text(page)
    assert 'name="code"' in text(page)
    return page


def sms_messages(app, to: str = PHONE) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text for m in app.extensions["idp"].sms_sender.messages() if m.to == to]


def mails(app, to: str = "kim@example.com"):  # type: ignore[no-untyped-def]
    return [m for m in app.extensions["idp"].mailer.messages() if m.to == to]


def audit_events(app, event: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    from idp.db import get_session

    with app.app_context():
        return app.extensions["idp"].audit.recent(get_session(), event=event)


def normalized(response) -> str:  # type: ignore[no-untyped-def]
    """The page without what differs by design between two requests."""
    page = re.sub(r"flow(=|%3D)[\w-]+", "flow=F", text(response))
    page = re.sub(r'name="csrf_token" value="[^"]+"', "", page)
    return re.sub(r"[\w.]+@example\.com", "EMAIL", page)


# -- e-mail first ------------------------------------------------------------------------
class TestIdentify:
    def test_first_screen_has_the_email_field_remember_box_and_passkey_link(self, client, rp):
        page = text(start(client))
        assert "E-mailadresse" in page
        assert "Gem min e-mailadresse til næste gang" in page
        assert "Anbefales ikke til offentlige eller delte computere." in page
        assert "Log ind med sikkerhedsnøgle eller biometri" in page
        assert ">Næste<" in page
        assert 'type="password"' not in page

    def test_remembered_email_is_a_long_lived_cookie_that_prefills_the_next_login(
        self, client, rp, user
    ):
        answer = form_post(client, start(client), {"email": "Kim@Example.com", "remember": "yes"})
        assert answer.status_code == HTTPStatus.OK
        assert 'name="password"' in text(answer)
        cookie = set_cookie(answer, "idp_email")
        assert cookie.startswith("idp_email=kim@example.com;")
        assert "Max-Age=31536000" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        again = text(start(client))
        assert 'value="kim@example.com"' in again
        assert 'name="remember" value="yes" checked' in again

    def test_back_arrow_forgets_the_remembered_email(self, client, rp, user):
        page = submit_email(client, start(client), user.email, remember="yes")
        back = form_post(client, page, {"action": "back"})
        assert back.status_code == HTTPStatus.FOUND
        assert back.location.startswith("/login?flow=")
        assert back.location == on_flow(page, "/login")
        assert is_login_screen(client.get(back.location))
        assert re.search(r"idp_email=; Expires=Thu, 01 Jan 1970", set_cookie(back, "idp_email"))
        assert 'value="kim@example.com"' not in text(start(client))

    def test_login_without_the_box_forgets_a_remembered_email(self, client, rp, user):
        submit_email(client, start(client), user.email, remember="yes")
        answer = form_post(client, start(client), {"email": user.email})
        assert answer.status_code == HTTPStatus.OK
        assert "idp_email=;" in set_cookie(answer, "idp_email")

    def test_invalid_email_is_refused_with_a_message(self, client, rp):
        answer = form_post(client, start(client), {"email": "kim"})
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Indtast en gyldig e-mailadresse." in text(answer)
        assert 'name="email"' in text(answer)  # the e-mail screen again
        assert is_login_screen(client.get(answer.request.url))  # still at the e-mail step

    def test_passkey_link_does_not_dead_end(self, client, rp):
        page = client.get(on_flow(start(client), "/login/passkey"))
        assert page.status_code == HTTPStatus.OK
        assert "Tilbage til login" in text(page)


# -- password --------------------------------------------------------------------------------
class TestPassword:
    def test_password_screen_shows_the_email_back_arrow_eye_and_forgot_link(self, client, rp, user):
        answer = submit_email(client, start(client), user.email)
        assert form_action(answer).startswith("/login/password?flow=")
        page = text(answer)
        assert 'name="password"' in page
        assert '<span id="login-email">kim@example.com</span>' in page
        assert 'name="action" value="back"' in page
        assert 'data-reveal="password"' in page
        assert "Vis adgangskode" in page
        assert "Har du glemt din adgangskode?" in page
        assert "/static/idp.js" in page

    def test_eye_script_is_served_from_our_origin(self, client):
        with client.get("/static/idp.js") as script:
            assert script.status_code == HTTPStatus.OK
            assert "data-reveal" in text(script)

    def test_unknown_email_gets_the_identical_page_and_the_same_work(
        self, app, client, rp, user, monkeypatch
    ):
        hasher = app.extensions["idp"].accounts.passwords
        verified = []
        original = hasher.verify
        monkeypatch.setattr(
            hasher, "verify", lambda stored, pw: verified.append(stored) or original(stored, pw)
        )
        wrong = password_step(client, user.email, "Wrong-password-1")
        unknown = password_step(client, "nobody@example.com", "Wrong-password-1")
        assert wrong.status_code == unknown.status_code == HTTPStatus.BAD_REQUEST
        assert normalized(wrong) == normalized(unknown)
        assert "E-mailadressen eller adgangskoden er forkert." in text(unknown)
        # One argon2 verification each: against the real hash, and against a dummy.
        assert len(verified) == 2
        assert verified[0].startswith("$argon2id$")

    def test_password_screen_cannot_be_opened_before_the_email(self, app, client, rp):
        email_page = start(client)
        location = on_flow(email_page, "/login/password")
        response = client.get(location)
        # The e-mail screen instead: the flow's current one.
        assert response.status_code == HTTPStatus.SEE_OTHER
        assert response.location == form_action(email_page)
        assert is_login_screen(client.get(response.location))
        # Nor is a password sent there looked at.
        sent = client.post(
            location, data={"password": PASSWORD, "csrf_token": csrf_token(email_page)}
        )
        assert sent.status_code == HTTPStatus.SEE_OTHER
        assert sent.location == form_action(email_page)
        assert not [c for c in sent.headers.getlist("Set-Cookie") if "idp_session" in c]
        assert audit_events(app, "login.failed") == audit_events(app, "login.succeeded") == []

    def test_failures_and_success_are_audited(self, app, client, rp, user):
        password_step(client, user.email, "Wrong-password-1")
        password_step(client, "nobody@example.com", "Wrong-password-1")
        failed = audit_events(app, "login.failed")
        assert [(e.subject_id, e.details["reason"]) for e in failed] == [
            (None, "password"),
            (user.id, "password"),
        ]
        assert failed[0].ip == "127.0.0.1"
        assert "Wrong-password-1" not in repr([e.details for e in failed])
        password_step(client, user.email)  # no factors, not required: in at once
        (succeeded,) = audit_events(app, "login.succeeded")
        assert succeeded.subject_id == user.id
        assert succeeded.client_id == "portal"


# -- second factor -----------------------------------------------------------------------------
class TestAuthenticatorApp:
    def test_login_with_totp_gives_amr_acr_and_auth_time(self, app, client, rp, user, factory):
        enrolment = factory.enrol(user)
        pkce = Pkce.new()
        response = authorize(client, authorize_params("portal", pkce))
        page = submit_login(client, response, user.email)
        assert page.status_code == HTTPStatus.OK
        assert form_action(page).startswith("/login/code?flow=")
        assert 'name="code"' in text(page)
        assert "Find koden i din Authenticator app." in text(page)
        assert "Prøv en anden måde" in text(page)
        before = clock.now()
        answer = form_post(client, page, {"code": enrolment.totp_code()})
        assert answer.location.startswith(REDIRECT_URI)
        code = query(answer.location)["code"]
        tokens = exchange(client, "portal", rp[1], code, pkce).get_json()
        claims = jwt.decode(tokens["id_token"], app.extensions["idp"].keyring.keyset).claims
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert claims["acr"] == "2fa"
        assert before - 5 <= claims["auth_time"] <= clock.now()

    def test_a_totp_code_cannot_be_used_twice(self, app, client, rp, user, factory):
        enrolment = factory.enrol(user)
        code = enrolment.totp_code()
        page = code_step(client)
        assert form_post(client, page, {"code": code}).location.startswith(REDIRECT_URI)
        other = app.test_client()
        page = code_step(other)
        replay = form_post(other, page, {"code": code})
        assert replay.status_code == HTTPStatus.BAD_REQUEST
        assert "Denne kode er allerede brugt" in text(replay)

    def test_an_account_without_an_app_gets_no_login_from_an_app_code(
        self, app, client, rp, user, factory
    ):
        """The code screen's form sent for an account with SMS only (its flow
        at the second factor): a code from any app is refused."""
        import pyotp

        factory.enrol(user, totp=False, phone=PHONE, emergency=False)
        sms_page = follow(client, password_step(client))
        flow = query(sms_page.request.url)["flow"]
        answer = client.post(
            f"/login/code?flow={flow}",
            data={
                "code": pyotp.TOTP(pyotp.random_base32()).now(),
                "csrf_token": csrf_token(sms_page),
            },
        )
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Koden er ikke korrekt" in text(answer)
        assert [e.details["reason"] for e in audit_events(app, "login.failed")] == ["totp"]

    def test_a_totp_code_accepted_meanwhile_by_another_request_is_refused(
        self, app, client, rp, user, factory, monkeypatch
    ):
        """Two requests with one code at once: the one that checked the code
        first but writes its time step second loses."""
        from sqlalchemy import update

        from idp.models import TotpCredential
        from idp.services import totp

        enrolment = factory.enrol(user)
        check = totp.verify

        def check_then_other_request_wins(*args):  # type: ignore[no-untyped-def]
            step = check(*args)
            with app.extensions["idp.engine"].begin() as connection:
                connection.execute(
                    update(TotpCredential)
                    .where(TotpCredential.user_id == user.id)
                    .values(last_used_step=step)
                )
            return step

        monkeypatch.setattr(totp, "verify", check_then_other_request_wins)
        page = code_step(client)
        answer = form_post(client, page, {"code": enrolment.totp_code()})
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Denne kode er allerede brugt" in text(answer)

    def test_an_account_disabled_after_its_password_gets_no_session(
        self, app, client, rp, user, factory
    ):
        from idp.db import get_session
        from idp.models import User

        enrolment = factory.enrol(user)
        page = code_step(client)
        assert "Find koden i din Authenticator app." in text(page)
        with app.app_context():
            get_session().get(User, user.id).is_active = False
            get_session().commit()
        answer = form_post(client, page, {"code": enrolment.totp_code()})
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Start venligst forfra" in text(answer)
        assert "idp_session" not in answer.headers.get("Set-Cookie", "")

    def test_wrong_code_is_refused(self, client, rp, user, factory):
        factory.enrol(user)
        page = code_step(client)
        answer = form_post(client, page, {"code": "000000"})
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Koden er ikke korrekt" in text(answer)

    def test_second_factor_screens_cannot_be_reached_without_the_password(
        self, app, client, rp, user, factory
    ):
        enrolment = factory.enrol(user, phone=PHONE)
        page = submit_email(client, start(client), user.email)  # e-mail typed, no password
        password_screen = form_action(page)
        assert password_screen.startswith("/login/password?flow=")
        # Each answers with the flow's current screen, the password's.
        for path in ("/login/code", "/login/methods", "/login/sms", "/login/emergency"):
            answer = client.get(on_flow(page, path))
            assert answer.status_code == HTTPStatus.SEE_OTHER, path
            assert answer.location == password_screen, path
        for path in ("/login/code", "/login/sms", "/login/emergency", "/login/emergency/new"):
            data = {"code": enrolment.totp_code(), "saved": "yes", "csrf_token": csrf_token(page)}
            answer = client.post(on_flow(page, path), data=data)
            assert answer.status_code == HTTPStatus.SEE_OTHER, path
            assert answer.location == password_screen, path
            assert "idp_session" not in " ".join(answer.headers.getlist("Set-Cookie")), path
        answer = client.post(
            on_flow(page, "/login/sms/send"), data={"csrf_token": csrf_token(page)}
        )
        assert answer.status_code == HTTPStatus.SEE_OTHER
        assert answer.location == password_screen
        # Nothing was accepted or sent, and the password is still asked for.
        assert sms_messages(app) == []
        assert audit_events(app, "login.succeeded") == []
        assert 'name="password"' in text(screen(client, password_screen))
        silent = authorize(client, authorize_params("portal", Pkce.new(), prompt="none"))
        assert query(silent.location)["error"] == "login_required"

    def test_wrong_codes_lock_the_account_with_a_clear_wait(self, app, client, rp, user, factory):
        enrolment = factory.enrol(user)
        page = code_step(client)
        for _ in range(4):
            assert form_post(client, page, {"code": "000000"}).status_code == 400
        locking = form_post(client, page, {"code": "000000"})
        assert "For mange forsøg. Prøv igen om 5 minutter." in text(locking)
        refused = form_post(client, page, {"code": enrolment.totp_code()})
        assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
        (lock,) = audit_events(app, "account.locked")
        assert lock.subject_id == user.id
        assert lock.details == {"seconds": 300}

    def test_typing_the_password_again_does_not_reset_wrong_codes(self, client, rp, user, factory):
        factory.enrol(user)
        for _ in range(4):
            page = code_step(client)
            assert form_post(client, page, {"code": "000000"}).status_code == 400
        page = code_step(client)
        locking = form_post(client, page, {"code": "000000"})
        assert "For mange forsøg. Prøv igen om 5 minutter." in text(locking)
        # Locked for the password too, until the wait is over.
        assert password_step(client).status_code == HTTPStatus.TOO_MANY_REQUESTS


class TestTryAnotherWay:
    def test_lists_only_enrolled_methods(self, client, rp, user, factory):
        factory.enrol(user)  # app and emergency code, no phone
        page = text(client.get(on_flow(code_step(client), "/login/methods")))
        assert "Find sikkerhedskoden i din Authenticator app" in page
        assert "Brug din engangskode til nødsituationer" in page
        assert "SMS" not in page

    def test_sms_through_another_way_shows_the_reference_that_is_in_the_sms(
        self, app, client, rp, user, factory
    ):
        factory.enrol(user, phone=PHONE)
        methods = client.get(on_flow(code_step(client), "/login/methods"))
        assert (
            "Få sikkerhedskoden sendt som en SMS til telefonnummeret, der slutter med 160"
            in text(methods)
        )
        sms_page = follow(client, form_post(client, methods, {}))
        page = text(sms_page)
        assert (
            "Vi har sendt en SMS med en 6-cifret bekræftelseskode til dit telefonnummer, der slutter med 160."
            in page
        )
        assert "Indtast din sikkerhedskode" in page
        assert ">Kontrollér<" in page
        assert "Prøv en anden måde" in page
        reference = re.search(r"Referencenummer: (\d{4})", page).group(1)
        (sms,) = sms_messages(app)
        assert f"Referencenummer: {reference}" in sms
        code = re.search(r"\b(\d{6})\b", sms).group(1)
        answer = form_post(client, sms_page, {"code": code})
        assert answer.location.startswith(REDIRECT_URI)

    def test_sms_is_sent_at_once_when_it_is_the_only_factor(self, app, client, rp, user, factory):
        factory.enrol(user, totp=False, phone=PHONE, emergency=False)
        response = password_step(client)
        assert response.location.startswith("/login/sms?flow=")
        assert len(sms_messages(app)) == 1

    def test_resend_waits_for_the_cooldown(self, app, client, rp, user, factory):
        factory.enrol(user, totp=False, phone=PHONE, emergency=False)
        sms_page = follow(client, password_step(client))
        resend = client.post(
            sms_page.request.url.replace("/login/sms", "/login/sms/send"),
            data={"csrf_token": csrf_token(sms_page)},
        )
        assert resend.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert "Prøv igen om 1 minutter" in text(resend)
        assert len(sms_messages(app)) == 1

    def test_sms_code_wrong_too_often_is_refused_even_when_right(
        self, app, client, rp, user, factory
    ):
        factory.enrol(user, totp=False, phone=PHONE, emergency=False)
        sms_page = follow(client, password_step(client))
        code = re.search(r"\b(\d{6})\b", sms_messages(app)[0]).group(1)
        wrong = "111111" if code != "111111" else "222222"
        first = form_post(client, sms_page, {"code": wrong})
        assert "4 forsøg tilbage" in text(first)
        for _ in range(4):
            form_post(client, sms_page, {"code": wrong})
        # The challenge is spent: back to the choice of methods, and the
        # account is locked for a while, so the right code no longer helps.
        answer = form_post(client, sms_page, {"code": code})
        assert answer.location.startswith("/login/methods?flow=")
        failures = audit_events(app, "login.failed")
        assert [e.details["reason"] for e in failures] == ["sms"] * 5
        assert len(audit_events(app, "account.locked")) == 1


class TestEmergencyCode:
    def test_accepted_once_in_any_case_without_dashes_then_a_new_code_is_saved(
        self, app, client, rp, user, factory
    ):
        enrolment = factory.enrol(user)
        page = client.get(on_flow(code_step(client), "/login/emergency"))
        typed = enrolment.emergency_code.lower().replace("-", "")
        new_page = follow(client, form_post(client, page, {"code": typed}))
        new_code = re.search(r'id="emergency-code">([^<]+)<', text(new_page)).group(1)
        assert new_code != enrolment.emergency_code
        assert re.fullmatch(r"([A-Z2-9]{4}-){4}[A-Z2-9]{4}", new_code)
        (mail,) = mails(app)
        assert mail.subject == "Din engangskode til nødsituationer er blevet brugt"
        # The box must be ticked; then the login completes.
        assert form_post(client, new_page, {}).status_code == HTTPStatus.BAD_REQUEST
        done = form_post(client, new_page, {"saved": "yes"})
        assert done.location.startswith(REDIRECT_URI)
        # The old code is spent; the new one works.
        other = app.test_client()
        page = other.get(on_flow(code_step(other), "/login/emergency"))
        assert form_post(other, page, {"code": enrolment.emergency_code}).status_code == 400
        assert form_post(other, page, {"code": new_code}).status_code == HTTPStatus.FOUND

    def test_turning_off_a_required_second_factor_replaces_it_once_the_new_app_works(
        self, app, client, rp, strict_user, factory
    ):
        import pyotp

        from idp.db import get_session
        from idp.models import User

        user = strict_user
        enrolment = factory.enrol(user, phone=PHONE)
        page = client.get(on_flow(code_step(client), "/login/emergency"))
        new_page = follow(client, form_post(client, page, {"code": enrolment.emergency_code}))
        off = client.post(
            new_page.request.url,
            data={"action": "disable", "csrf_token": csrf_token(new_page)},
        )
        assert off.location.startswith("/activate/totp?flow=")
        # Abandoned here, the account would still have its old app and phone.
        with app.app_context():
            row = get_session().get(User, user.id)
            methods = app.extensions["idp"].factors.methods(get_session(), row)
            assert methods == ["totp", "sms"]
        page = follow(client, off)
        new_secret = totp_key(page)
        page = follow(client, form_post(client, page, {"code": pyotp.TOTP(new_secret).now()}))
        with app.app_context():
            row = get_session().get(User, user.id)
            assert app.extensions["idp"].factors.methods(get_session(), row) == ["totp"]
            assert not row.phone_number_verified  # the lost phone no longer gets codes
        (event,) = audit_events(app, "mfa.disabled")
        assert event.details == {"replaced": True}
        page = follow(client, form_post(client, page, {"action": "skip"}))
        page = follow(client, form_post(client, page, {"saved": "yes"}))
        done = form_post(client, page, {})
        assert done.location.startswith(REDIRECT_URI)
        # The old app's codes are gone with it.
        other = app.test_client()
        page = code_step(other)
        assert form_post(other, page, {"code": enrolment.totp_code()}).status_code == 400

    def test_a_failed_notification_does_not_block_the_login(
        self, app, client, rp, user, factory, monkeypatch
    ):
        from idp.services.mail import MailDeliveryError

        def down(message):  # type: ignore[no-untyped-def]
            raise MailDeliveryError("smtp down")

        monkeypatch.setattr(app.extensions["idp"].mailer, "send", down)
        enrolment = factory.enrol(user)
        page = client.get(on_flow(code_step(client), "/login/emergency"))
        answer = form_post(client, page, {"code": enrolment.emergency_code})
        assert answer.location.startswith("/login/emergency/new?flow=")

    def test_turning_off_logs_in_with_the_password_when_not_required(
        self, app, client, rp, factory
    ):
        user = factory.user("ann@example.com", mfa_required=False)
        enrolment = factory.enrol(user)
        page = client.get(on_flow(code_step(client, "ann@example.com"), "/login/emergency"))
        new_page = follow(client, form_post(client, page, {"code": enrolment.emergency_code}))
        off = client.post(
            new_page.request.url, data={"action": "disable", "csrf_token": csrf_token(new_page)}
        )
        assert off.location.startswith(REDIRECT_URI)

    def test_wrong_emergency_code_is_refused(self, client, rp, user, factory):
        factory.enrol(user)
        page = client.get(on_flow(code_step(client), "/login/emergency"))
        answer = form_post(client, page, {"code": "AAAA-BBBB-CCCC-DDDD-EEEE"})
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Engangskoden til nødsituationer er ikke korrekt." in text(answer)


# -- enrolment before the code -------------------------------------------------------------------
def test_required_two_step_verification_is_enrolled_before_the_client_gets_a_code(
    client, rp, strict_user
):
    response = password_step(client)
    assert response.location.startswith("/activate/totp?flow=")
    page = follow(client, response)
    import pyotp

    page = follow(client, form_post(client, page, {"code": pyotp.TOTP(totp_key(page)).now()}))
    page = follow(client, form_post(client, page, {"action": "skip"}))  # no SMS
    page = follow(client, form_post(client, page, {"saved": "yes"}))
    assert "Totrinsbekræftelse aktiveret" in text(page)
    done = form_post(client, page, {})
    assert done.location.startswith(REDIRECT_URI)
    assert "code" in query(done.location)


# -- forgotten password ------------------------------------------------------------------------------
class TestForgottenPassword:
    def _request_link(self, app, client, email: str = "kim@example.com") -> str:  # type: ignore[no-untyped-def]
        page = submit_email(client, start(client), email)
        forgot = client.get(
            re.search(r'id="forgot" href="([^"]+)"', text(page)).group(1).replace("&amp;", "&")
        )
        assert "Har du glemt din adgangskode?" in text(forgot)
        assert f'value="{email}"' in text(forgot)
        sent = form_post(client, forgot, {"email": email})
        assert "Tjek din e-mail" in text(sent)
        app.extensions["idp"].background.wait()  # the e-mail goes out after the answer
        links = [link for m in mails(app, email) for link in m.links() if "/reset/" in link]
        return links[0].removeprefix("http://localhost") if links else ""

    @staticmethod
    def _tokens_elsewhere(app, factory, user, client_id: str, secret: str):  # type: ignore[no-untyped-def]
        """Another browser logs in (password and app) for ``client_id``,
        which gets tokens; returns the browser and the token response."""
        enrolment = factory.enrol(user)
        other, pkce = app.test_client(), Pkce.new()
        page = screen(
            other,
            submit_login(other, authorize(other, authorize_params(client_id, pkce)), user.email),
        )
        assert form_action(page).startswith("/login/code?flow=")
        params = query(form_post(other, page, {"code": enrolment.totp_code()}).location)
        return other, exchange(other, client_id, secret, params["code"], pkce).get_json()

    def test_reset_end_to_end_revokes_sessions_and_grants_but_keeps_the_second_factor(
        self, app, client, rp, user, factory
    ):
        # Another browser is logged in and its client holds a refresh token.
        other, tokens = self._tokens_elsewhere(app, factory, user, "portal", rp[1])
        refresh = tokens["refresh_token"]

        link = self._request_link(app, client)
        (mail,) = mails(app)
        assert mail.subject == "Angiv en ny adgangskode"
        assert "24 timer" in mail.text
        form = follow(client, client.get(link))
        assert "Vælg en ny adgangskode" in text(form)
        weak = form_post(client, form, {"password": "kort", "confirm": "kort"})
        assert weak.status_code == HTTPStatus.BAD_REQUEST
        assert "mindst 8 tegn" in text(weak)
        done = form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == HTTPStatus.OK
        assert "Din adgangskode er blevet ændret" in text(done)
        assert 'href="http://localhost:8000/login"' in text(done)
        assert mails(app)[0].subject == "Din adgangskode er blevet ændret"

        # The other browser is logged out and the refresh token is dead.
        silent = authorize(other, authorize_params("portal", Pkce.new(), prompt="none"))
        assert query(silent.location)["error"] == "login_required"
        refreshed = other.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh},
            auth=("portal", rp[1]),
        )
        assert refreshed.get_json()["error"] == "invalid_grant"
        # The old password no longer works; the new one still needs the app.
        assert password_step(client).status_code == HTTPStatus.BAD_REQUEST
        code_page = password_step(client, password=NEW_PASSWORD)
        assert code_page.status_code == HTTPStatus.OK
        assert form_action(code_page).startswith("/login/code?flow=")
        assert [e.details["via"] for e in audit_events(app, "password.changed")] == ["reset"]

    def test_a_reset_logs_the_products_out_over_the_back_channel(
        self, app, client, rp, factory, user
    ):
        """Whoever knew the old password is logged out of the products too:
        each product the user's sessions reached gets a logout token."""
        receiver = Receiver()
        try:
            _, secret = factory.client("crm", backchannel_logout_uri=receiver.url)
            _, tokens = self._tokens_elsewhere(app, factory, user, "crm", secret)
            id_token = tokens["id_token"]
            form = follow(client, client.get(self._request_link(app, client)))
            form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
            app.extensions["idp"].background.wait()
            (logout_token,) = receiver.tokens
        finally:
            receiver.close()
        keyset = app.extensions["idp"].keyring.keyset
        claims = jwt.decode(logout_token, keyset).claims
        signed_in = jwt.decode(id_token, keyset).claims
        assert (claims["aud"], claims["sub"], claims["sid"]) == (
            "crm",
            signed_in["sub"],
            signed_in["sid"],
        )
        assert [e.actor_id for e in audit_events(app, "session.revoked")] == [user.id]

    def test_a_reset_logs_out_even_when_its_notice_fails(
        self, app, client, rp, user, factory, monkeypatch
    ):
        """The notice can wait on the mail server, or fail: the sessions end
        first, whatever becomes of it."""
        other, _ = self._tokens_elsewhere(app, factory, user, "portal", rp[1])
        form = follow(client, client.get(self._request_link(app, client)))

        def failing_notice(*args):  # type: ignore[no-untyped-def]
            raise RuntimeError("the mail template broke")

        monkeypatch.setattr("idp.views.login.notify", failing_notice)
        with pytest.raises(RuntimeError):
            form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        silent = authorize(other, authorize_params("portal", Pkce.new(), prompt="none"))
        assert query(silent.location)["error"] == "login_required"
        assert [e.details["via"] for e in audit_events(app, "password.changed")] == ["reset"]

    def test_a_reset_ends_the_access_tokens_of_a_lost_grant(self, app, client, rp, user, factory):
        """A grant gone in a database crash (its commit did not wait for the
        disk): the reset still ends its access token, by its session id and
        the user's cutoff, neither of which needs the grant's row."""
        from sqlalchemy import delete

        from idp.models import Grant
        from idp.models import RefreshToken

        _, tokens = self._tokens_elsewhere(app, factory, user, "portal", rp[1])
        access = tokens["access_token"]
        with app.extensions["idp.engine"].begin() as connection:
            connection.execute(delete(RefreshToken))
            connection.execute(delete(Grant))
        form = follow(client, client.get(self._request_link(app, client)))
        done = form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == HTTPStatus.OK
        introspected = client.post("/introspect", data={"token": access}, auth=("portal", rp[1]))
        assert introspected.get_json() == {"active": False}

    def test_a_used_reset_link_is_refused(self, app, client, rp, user):
        link = self._request_link(app, client)
        form = follow(client, client.get(link))
        form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        again = client.get(link)
        assert again.status_code == HTTPStatus.BAD_REQUEST
        assert "Dette link kan ikke bruges" in text(again)

    def test_an_expired_reset_link_is_refused(self, app, client, rp, user, monkeypatch):
        link = self._request_link(app, client)
        later = clock.now() + 24 * 3600 + 1
        monkeypatch.setattr(clock, "now", lambda: later)
        assert "Dette link kan ikke bruges" in text(client.get(link))

    def test_older_links_die_when_one_is_used(self, app, client, rp, user):
        first = self._request_link(app, client)
        app.extensions["idp"].mailer.clear()
        second = self._request_link(app, client)
        assert first != second
        form = follow(client, client.get(second))
        form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert "Dette link kan ikke bruges" in text(client.get(first))

    def test_a_reset_lifts_the_lock(self, app, client, rp, user):
        for _ in range(5):
            password_step(client, password="Wrong-password-1")
        assert password_step(client).status_code == HTTPStatus.TOO_MANY_REQUESTS
        link = self._request_link(app, client)
        form = follow(client, client.get(link))
        form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert password_step(client, password=NEW_PASSWORD).location.startswith(REDIRECT_URI)

    def test_a_login_begun_before_the_reset_cannot_finish_after_it(
        self, app, client, rp, user, factory
    ):
        enrolment = factory.enrol(user)
        intruder = app.test_client()
        code_page = code_step(intruder)  # knew the old password
        link = self._request_link(app, client)
        form = follow(client, client.get(link))
        form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        late = form_post(intruder, code_page, {"code": enrolment.totp_code()})
        assert late.status_code == HTTPStatus.BAD_REQUEST
        assert "Start venligst forfra" in text(late)

    def test_a_reset_flow_on_a_login_screen_gets_the_start_again_page(self, app, client, rp, user):
        link = self._request_link(app, client)
        form = follow(client, client.get(link))
        assert form_action(form).startswith("/reset/password?flow=")
        for path in ("/login", "/login/password", "/login/code", "/login/emergency/new"):
            answer = client.get(on_flow(form, path))
            assert answer.status_code == HTTPStatus.BAD_REQUEST, path
            assert "Start venligst forfra" in text(answer), path
        answer = client.post(
            on_flow(form, "/login/password"),
            data={"password": PASSWORD, "csrf_token": csrf_token(form)},
        )
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        # The reset itself still works.
        done = form_post(client, form, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert "Din adgangskode er blevet ændret" in text(done)

    def test_undeliverable_mail_gives_the_same_answer(self, app, client, rp, user, monkeypatch):
        from idp.services.mail import MailDeliveryError

        def down(message):  # type: ignore[no-untyped-def]
            raise MailDeliveryError("smtp down")

        monkeypatch.setattr(app.extensions["idp"].mailer, "send", down)
        assert self._request_link(app, client) == ""  # "Tjek din e-mail", and no crash

    def test_unknown_address_gets_the_same_answer_and_no_mail(self, app, client, rp):
        assert self._request_link(app, client, "nobody@example.com") == ""
        assert app.extensions["idp"].mailer.messages() == []

    def test_reset_requests_are_limited_per_address(self, app, client, rp, user):
        for _ in range(3):
            self._request_link(app, client)
        page = client.get("/login/forgot")
        answer = form_post(client, page, {"email": user.email})
        assert answer.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert len(mails(app)) == 3


# -- a screen or form of another step (a reload, the back button) ---------------------------------
class TestAnotherStep:
    def test_sending_the_email_again_shows_the_password_screen_and_keeps_the_address(
        self, client, rp, user
    ):
        email_page = start(client)
        password_page = submit_email(client, email_page, user.email)
        password_screen = form_action(password_page)
        assert password_screen.startswith("/login/password?flow=")
        # The e-mail form sent again (a reload), with another address: not taken.
        again = form_post(client, email_page, {"email": "ann@example.com", "remember": "yes"})
        assert again.status_code == HTTPStatus.SEE_OTHER
        assert again.location == password_screen
        assert not [c for c in again.headers.getlist("Set-Cookie") if c.startswith("idp_email=")]
        # The e-mail screen opened again (the back button): the same.
        reopened = client.get(form_action(email_page))
        assert reopened.status_code == HTTPStatus.SEE_OTHER
        assert reopened.location == password_screen
        page = screen(client, again.location)
        assert 'name="password"' in text(page)
        assert '<span id="login-email">kim@example.com</span>' in text(page)
        assert submit_password(client, page).location.startswith(REDIRECT_URI)

    def test_sending_the_password_again_after_it_was_accepted_shows_the_code_screen_and_is_no_failure(
        self, app, client, rp, user, factory
    ):
        enrolment = factory.enrol(user)
        password_page = submit_email(client, start(client), user.email)
        code_page = screen(client, submit_password(client, password_page))
        code_screen = form_action(code_page)
        assert code_screen.startswith("/login/code?flow=")
        # More than enough wrong passwords to lock the account, and the back arrow.
        for data in [{"password": "Wrong-password-1"}] * 5 + [
            {"password": PASSWORD},
            {"action": "back"},
        ]:
            again = form_post(client, password_page, data)
            assert again.status_code == HTTPStatus.SEE_OTHER, data
            assert again.location == code_screen, data
        reopened = client.get(form_action(password_page))
        assert reopened.status_code == HTTPStatus.SEE_OTHER
        assert reopened.location == code_screen
        assert audit_events(app, "login.failed") == []
        assert audit_events(app, "account.locked") == []
        # Not locked: the password still works in another login ...
        assert 'name="code"' in text(code_step(app.test_client()))
        # ... and this one goes on from its code screen.
        page = screen(client, again.location)
        assert "Find koden i din Authenticator app." in text(page)
        answer = form_post(client, page, {"code": enrolment.totp_code()})
        assert answer.location.startswith(REDIRECT_URI)

    def test_sending_the_password_again_sends_no_second_sms(self, app, client, rp, user, factory):
        factory.enrol(user, totp=False, phone=PHONE, emergency=False)
        password_page = submit_email(client, start(client), user.email)
        sent = submit_password(client, password_page)
        assert sent.status_code == HTTPStatus.FOUND
        assert sent.location.startswith("/login/sms?flow=")
        again = form_post(client, password_page, {"password": PASSWORD})
        assert again.status_code == HTTPStatus.SEE_OTHER
        assert again.location == sent.location
        # The password screen opened again (the back button): the same.
        reopened = client.get(form_action(password_page))
        assert reopened.status_code == HTTPStatus.SEE_OTHER
        assert reopened.location == sent.location
        assert len(sms_messages(app)) == 1
        assert "Indtast din sikkerhedskode" in text(screen(client, again.location))

    def test_after_an_emergency_code_the_code_screens_lead_to_the_new_code(
        self, app, client, rp, user, factory
    ):
        enrolment = factory.enrol(user)
        code_page = code_step(client)
        page = client.get(on_flow(code_page, "/login/emergency"))
        used = form_post(client, page, {"code": enrolment.emergency_code})
        assert used.status_code == HTTPStatus.FOUND
        new_screen = used.location
        assert new_screen.startswith("/login/emergency/new?flow=")
        # The emergency code sent again, the app's code: neither is looked at.
        for sent in (
            form_post(client, page, {"code": enrolment.emergency_code}),
            form_post(client, code_page, {"code": enrolment.totp_code()}),
            client.get(on_flow(code_page, "/login/code")),
        ):
            assert sent.status_code == HTTPStatus.SEE_OTHER
            assert sent.location == new_screen
        assert len(audit_events(app, "emergency_code.used")) == 1
        assert audit_events(app, "login.failed") == audit_events(app, "login.succeeded") == []
        assert 'id="emergency-code"' in text(screen(client, new_screen))

    def test_after_the_login_the_login_screens_lead_to_the_consent(self, client, user, factory):
        factory.client("partner", is_first_party=False, display_name="Partner App")
        response = authorize(client, authorize_params("partner", Pkce.new()))
        password_page = submit_email(client, response, user.email)
        consent = submit_password(client, password_page)
        assert consent.status_code == HTTPStatus.FOUND
        assert consent.location.startswith("/consent?flow=")
        for sent in (
            form_post(client, password_page, {"password": PASSWORD}),
            form_post(client, response, {"email": user.email}),
            client.get(form_action(password_page)),
        ):
            assert sent.status_code == HTTPStatus.SEE_OTHER
            assert sent.location == consent.location
        page = screen(client, consent.location)
        assert "Partner App" in text(page)
        allowed = form_post(client, page, {"decision": "allow"})
        assert "code" in query(allowed.location)

    def test_during_a_required_enrolment_the_login_screens_lead_to_it(
        self, client, rp, strict_user
    ):
        password_page = submit_email(client, start(client), strict_user.email)
        enrolment = submit_password(client, password_page)
        assert enrolment.status_code == HTTPStatus.FOUND
        assert enrolment.location.startswith("/activate/totp?flow=")
        for again in (
            form_post(client, password_page, {"password": PASSWORD}),
            client.get(form_action(password_page)),
            client.get(on_flow(password_page, "/login")),
        ):
            assert again.status_code == HTTPStatus.SEE_OTHER
            assert again.location == enrolment.location
        assert totp_key(screen(client, enrolment.location))  # the app's set-up screen

    def test_a_flow_that_runs_out_while_its_screen_is_answered_says_start_again(
        self, app, client, rp, user, monkeypatch
    ):
        page = start(client)

        def ran_out(flow):  # type: ignore[no-untyped-def]
            raise FlowError("expired")

        monkeypatch.setattr(app.extensions["idp"].flows, "save", ran_out)
        answer = form_post(client, page, {"email": user.email})
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Start venligst forfra" in text(answer)

    def test_another_browser_or_an_unknown_flow_gets_the_start_again_page(
        self, app, client, rp, user
    ):
        password_page = submit_email(client, start(client), user.email)
        other = app.test_client()
        other_page = start(other)  # the other browser's own session and CSRF token
        for path in ("/login", "/login/password", "/login/code", "/login/emergency/new"):
            answer = other.get(on_flow(password_page, path))
            assert answer.status_code == HTTPStatus.BAD_REQUEST, path
            assert "Start venligst forfra" in text(answer), path
        for path, data in (
            ("/login", {"email": "ann@example.com"}),
            ("/login/password", {"password": PASSWORD}),
            ("/login/code", {"code": "000000"}),
        ):
            answer = other.post(
                on_flow(password_page, path), data={**data, "csrf_token": csrf_token(other_page)}
            )
            assert answer.status_code == HTTPStatus.BAD_REQUEST, path
            assert "Start venligst forfra" in text(answer), path
        for path in ("/login", "/login/password", "/login/code"):
            answer = client.get(path + "?flow=unknown-flow")
            assert answer.status_code == HTTPStatus.BAD_REQUEST, path
            assert "Start venligst forfra" in text(answer), path
        assert audit_events(app, "login.failed") == audit_events(app, "login.succeeded") == []
        # The flow is untouched: its own browser logs in.
        assert submit_password(client, password_page).location.startswith(REDIRECT_URI)


# -- sessions ---------------------------------------------------------------------------------------
class TestSessions:
    def test_second_client_is_answered_without_a_prompt(self, client, rp, user, factory):
        factory.client("shop", display_name="Webshop")
        login_for_code(client, "portal", user.email, Pkce.new())
        response = authorize(client, authorize_params("shop", Pkce.new()))
        assert response.location.startswith(REDIRECT_URI)
        assert "code" in query(response.location)

    def test_login_sets_a_new_http_only_lax_session_cookie_and_ends_the_old_session(
        self, app, client, rp, user
    ):
        first = password_step(client)
        old = re.search(r"idp_session=([^;]+)", set_cookie(first, "idp_session")).group(1)
        second = password_step(client)
        cookie = set_cookie(second, "idp_session")
        new = re.search(r"idp_session=([^;]+)", cookie).group(1)
        assert new != old
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert app.extensions["idp"].sessions.get(old) is None
        assert app.extensions["idp"].sessions.get(new) is not None

    def test_idle_session_needs_a_new_login(self, client, rp, user, monkeypatch):
        login_for_code(client, "portal", user.email, Pkce.new())
        later = clock.now() + 8 * 3600 + 1
        monkeypatch.setattr(clock, "now", lambda: later)
        response = authorize(client, authorize_params("portal", Pkce.new(), prompt="none"))
        assert query(response.location)["error"] == "login_required"

    def test_account_page_logs_in_and_out(self, client, rp, user):
        response = client.get("/account")
        assert response.location.startswith("/login?flow=")
        answer = submit_login(client, response.location, user.email)
        assert answer.location == "/account"
        page = client.get("/account")
        assert "kim@example.com" in text(page)
        assert "Din konto" in text(page)
        out = client.post("/logout", data={"csrf_token": csrf_token(page), "confirm": "yes"})
        assert out.status_code == HTTPStatus.OK
        assert "Du er logget ud" in text(out)
        response = authorize(client, authorize_params("portal", Pkce.new(), prompt="none"))
        assert query(response.location)["error"] == "login_required"
        assert client.get("/account").location.startswith("/login?flow=")
