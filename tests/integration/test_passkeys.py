"""Passkeys and security keys through the screens, with a software
authenticator answering as the browser would."""

from __future__ import annotations

import html
import re
from http import HTTPStatus

import pytest
from joserfc import jwt

from idp import clock
from idp.db import get_session
from idp.models import User
from idp.models import WebAuthnCredential
from tests.authenticator import Authenticator
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import exchange
from tests.flows import follow
from tests.flows import form_action
from tests.flows import is_login_screen
from tests.flows import query
from tests.flows import screen
from tests.flows import submit_login

ORIGIN = "http://localhost"


@pytest.fixture
def rp(factory):  # type: ignore[no-untyped-def]
    return factory.client("portal", initiate_login_uri="http://localhost:8000/login")


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    return factory.user("kim@example.com")


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def options(page) -> str:  # type: ignore[no-untyped-def]
    found = re.search(r'data-options="([^"]*)"', text(page))
    assert found, text(page)
    return html.unescape(found.group(1))


def answer(client, page, action: str, credential: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post(
        action, data={"csrf_token": csrf_token(page), "credential": credential, **form}
    )


def login_page(client, **extra: str):  # type: ignore[no-untyped-def]
    """The e-mail screen, as the authorization request answers it."""
    pkce = Pkce.new()
    response = authorize(client, authorize_params("portal", pkce, **extra))
    assert is_login_screen(response)
    return response, pkce


def passkey_action(page) -> str:  # type: ignore[no-untyped-def]
    """The passkey answer's URL, beside the e-mail screen's form."""
    action = form_action(page)
    assert action.startswith("/login?flow="), action
    return action.replace("/login?", "/login/passkey?")


def passwordless(client, device):  # type: ignore[no-untyped-def]
    page, pkce = login_page(client)
    action = passkey_action(page)
    return answer(client, page, action, device.get_json(options(page), ORIGIN)), pkce


def second_factor_page(client, user):  # type: ignore[no-untyped-def]
    """After the e-mail and the password: the screen of the preferred second factor."""
    response = authorize(client, authorize_params("portal", Pkce.new()))
    return screen(client, submit_login(client, response, user.email))


def claims(app, client, rp, response, pkce) -> dict:  # type: ignore[no-untyped-def,type-arg]
    code = query(response.location)["code"]
    tokens = exchange(client, "portal", rp[1], code, pkce).get_json()
    return jwt.decode(tokens["id_token"], app.extensions["idp"].keyring.keyset).claims


def audit(app, event: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    with app.app_context():
        return app.extensions["idp"].audit.recent(get_session(), event=event)


class TestPasswordless:
    def test_email_screen_offers_passkeys_in_the_button_and_autofill(self, client, rp):
        page, _ = login_page(client)
        body = text(page)
        assert 'autocomplete="username webauthn"' in body
        assert 'data-conditional="yes"' in body
        assert "data-webauthn-start" in body
        assert "/static/passkeys.js" in body
        assert '"userVerification": "required"' in options(page)

    def test_passkey_login_is_two_factors(self, app, client, rp, user, factory):
        device = Authenticator()
        factory.passkey(user, device)
        response, pkce = passwordless(client, device)
        assert response.location.startswith(REDIRECT_URI)
        found = claims(app, client, rp, response, pkce)
        assert found["amr"] == ["hwk", "mfa"]
        assert found["acr"] == "2fa"
        (event,) = audit(app, "login.succeeded")
        assert event.details["amr"] == ["hwk", "mfa"]

    def test_a_key_without_user_verification_cannot_log_in_alone(
        self, app, client, rp, user, factory
    ):
        device = Authenticator()
        factory.passkey(user, device)
        device.verifies_user = False
        response, _ = passwordless(client, device)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert "kunne ikke bruges" in text(response)
        assert [e.details["reason"] for e in audit(app, "login.failed")] == ["webauthn"]

    def test_a_cloned_key_is_refused_and_audited(self, app, client, rp, user, factory):
        device = Authenticator()
        key = factory.passkey(user, device)
        passwordless(app.test_client(), device)
        device.sign_count = 0
        response, _ = passwordless(client, device)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        (event,) = audit(app, "webauthn.cloned")
        assert event.subject_id == user.id
        assert event.details == {"credential": key.id}

    def test_a_challenge_cannot_be_answered_twice(self, client, rp, user, factory):
        device = Authenticator()
        factory.passkey(user, device)
        page, _ = login_page(client)
        action = passkey_action(page)
        credential = device.get_json(options(page), ORIGIN)
        assert answer(client, page, action, credential).status_code == HTTPStatus.FOUND
        page, _ = login_page(client, prompt="login")
        replay = answer(client, page, passkey_action(page), credential)
        assert replay.status_code == HTTPStatus.BAD_REQUEST

    def test_passkey_page_without_javascript_explains(self, client, rp):
        page, _ = login_page(client)
        alone = client.get(passkey_action(page))
        assert alone.status_code == HTTPStatus.OK
        assert "kræver JavaScript" in text(alone)


class TestSecondFactor:
    def test_security_key_after_the_password(self, app, client, rp, user, factory):
        device = Authenticator()
        factory.passkey(user, device)
        device.verifies_user = False
        pkce = Pkce.new()
        response = authorize(client, authorize_params("portal", pkce))
        page = screen(client, submit_login(client, response, user.email))
        assert form_action(page).startswith("/login/key?flow=")
        assert '"allowCredentials": [{' in options(page)
        done = answer(client, page, form_action(page), device.get_json(options(page), ORIGIN))
        assert done.location.startswith(REDIRECT_URI)
        assert claims(app, client, rp, done, pkce)["amr"] == ["pwd", "hwk", "mfa"]

    def test_try_another_way_offers_the_key(self, client, rp, user, factory):
        factory.enrol(user)
        factory.passkey(user, Authenticator())
        page = second_factor_page(client, user)
        assert form_action(page).startswith("/login/key?flow=")
        methods = client.get(form_action(page).replace("/login/key", "/login/methods"))
        assert "Brug din sikkerhedsnøgle eller biometri" in text(methods)

    def test_the_key_of_another_account_is_refused(self, client, rp, user, factory):
        factory.passkey(user, Authenticator())
        other_device = Authenticator()
        factory.passkey(factory.user("ann@example.com"), other_device)
        page = second_factor_page(client, user)
        assert form_action(page).startswith("/login/key?flow=")
        refused = answer(
            client, page, form_action(page), other_device.get_json(options(page), ORIGIN)
        )
        assert refused.status_code == HTTPStatus.BAD_REQUEST


class TestActivation:
    def test_activation_with_a_passkey_instead_of_a_password(self, app, client, rp):
        from idp.invitations import invite
        from idp.services.accounts import UserProfile

        with app.app_context():
            invite(get_session(), "new@example.com", UserProfile(given_name="Nina"), "portal")
        link = next(m for m in app.extensions["idp"].mailer.messages()).links()[0]
        page = follow(client, client.get(link.removeprefix("http://localhost")))
        assert "Log ind uden adgangskode" in text(page)
        page = client.get(page.request.url.replace("/activate/password", "/activate/passkey"))
        assert "Opret en adgangsnøgle" in text(page)
        device = Authenticator()
        done = answer(client, page, page.request.url, device.create_json(options(page), ORIGIN))
        # The way back in if the device is lost: the emergency code.
        page = follow(client, done)
        assert "Gem din engangskode til nødsituationer" in text(page)
        page = follow(
            client,
            client.post(page.request.url, data={"csrf_token": csrf_token(page), "saved": "yes"}),
        )
        assert "Din adgangsnøgle er klar" in text(page)
        landed = client.post(page.request.url, data={"csrf_token": csrf_token(page)})
        assert landed.location == "http://localhost:8000/login"
        with app.app_context():
            row = get_session().query(User).filter_by(email="new@example.com").one()
            assert row.password_hash is None
            assert row.activated_at is not None
        subjects = [m.subject for m in app.extensions["idp"].mailer.messages()]
        assert "En adgangsnøgle er blevet tilføjet til din konto" in subjects
        # Logged in: the portal's next request is answered at once.
        response = authorize(client, authorize_params("portal", Pkce.new()))
        assert response.location.startswith(REDIRECT_URI)
        # The link is spent.
        assert client.get(link.removeprefix("http://localhost")).status_code == 400

    def test_an_account_with_factors_cannot_swap_them_for_a_passkey(self, app, client, rp, factory):
        """A new activation link (the mailbox alone) must not replace an
        existing second factor with the reader's own passkey."""
        from idp.invitations import invite
        from idp.services.accounts import UserProfile

        user = factory.user("kim@example.com")
        factory.enrol(user)
        with app.app_context():
            invite(get_session(), "kim@example.com", UserProfile(given_name="Kim"), "portal")
        link = next(m for m in app.extensions["idp"].mailer.messages()).links()[0]
        page = follow(client, client.get(link.removeprefix("http://localhost")))
        assert "Log ind uden adgangskode" not in text(page)
        sneaky = client.get(page.request.url.replace("/activate/password", "/activate/passkey"))
        assert sneaky.location.startswith("/activate/password?flow=")
        posted = client.post(
            page.request.url.replace("/activate/password", "/activate/passkey"),
            data={"csrf_token": csrf_token(page), "credential": "{}"},
        )
        assert posted.location.startswith("/activate/password?flow=")
        with app.app_context():
            assert get_session().query(WebAuthnCredential).count() == 0


class TestAccountPage:
    def _logged_in(self, client, user, device) -> object:  # type: ignore[no-untyped-def]
        response = client.get("/account")
        page = client.get(response.location)
        action = page.request.url.replace("/login?", "/login/passkey?")
        assert (
            answer(client, page, action, device.get_json(options(page), ORIGIN)).location
            == "/account"
        )
        return client.get("/account")

    def test_add_rename_and_remove_keys(self, app, client, rp, user, factory):
        first = Authenticator()
        factory.passkey(user, first)
        page = self._logged_in(client, user, first)
        assert "Nøgle" in text(page)
        second = Authenticator(syncable=True)
        added = answer(
            client,
            page,
            "/account/passkeys",
            second.create_json(options(page), ORIGIN),
            name="Min telefon",
        )
        assert added.location == "/account?done=added"
        page = client.get(added.location)
        assert "Adgangsnøglen er tilføjet." in text(page)
        assert 'value="Min telefon"' in text(page)
        assert (
            app.extensions["idp"].mailer.messages()[0].subject
            == "En adgangsnøgle er blevet tilføjet til din konto"
        )
        with app.app_context():
            keys = (
                get_session()
                .query(WebAuthnCredential)
                .filter_by(user_id=user.id)
                .order_by(WebAuthnCredential.id)
                .all()
            )
            assert [k.name for k in keys] == ["Nøgle", "Min telefon"]
            assert keys[1].backup_eligible
            first_id, second_id = keys[0].id, keys[1].id
        renamed = client.post(
            f"/account/passkeys/{second_id}/rename",
            data={"csrf_token": csrf_token(page), "name": "Telefon"},
        )
        assert renamed.location == "/account?done=renamed"
        removed = client.post(
            f"/account/passkeys/{first_id}/delete", data={"csrf_token": csrf_token(page)}
        )
        assert removed.location == "/account?done=removed"
        notice = app.extensions["idp"].mailer.messages()[0]
        assert notice.subject == "En adgangsnøgle er blevet fjernet fra din konto"
        # The removed key no longer logs in.
        refused, _ = passwordless(app.test_client(), first)
        assert refused.status_code == HTTPStatus.BAD_REQUEST
        assert {
            e.event
            for e in audit(app, "passkey.added")
            + audit(app, "passkey.renamed")
            + audit(app, "passkey.removed")
        } == {"passkey.added", "passkey.renamed", "passkey.removed"}

    def test_the_last_way_in_cannot_be_removed(self, app, client, factory):
        user = factory.user("nopw@example.com", password=None)
        device = Authenticator()
        key = factory.passkey(user, device)
        page = self._logged_in(client, user, device)
        refused = client.post(
            f"/account/passkeys/{key.id}/delete", data={"csrf_token": csrf_token(page)}
        )
        assert refused.status_code == HTTPStatus.BAD_REQUEST
        assert "eneste måde at logge ind på" in text(refused)

    def test_adding_a_key_needs_a_recent_login(self, client, user, factory, monkeypatch):
        device = Authenticator()
        factory.passkey(user, device)
        page = self._logged_in(client, user, device)
        stale_options = options(page)
        later = clock.now() + 16 * 60
        monkeypatch.setattr(clock, "now", lambda: later)
        page = client.get("/account")
        assert "Log ind igen, før du tilføjer" in text(page)
        refused = answer(
            client, page, "/account/passkeys", Authenticator().create_json(stale_options, ORIGIN)
        )
        assert refused.status_code == HTTPStatus.FORBIDDEN

    def test_another_users_key_cannot_be_touched(self, client, user, factory):
        device = Authenticator()
        factory.passkey(user, device)
        other = factory.passkey(factory.user("ann@example.com"), Authenticator())
        page = self._logged_in(client, user, device)
        for verb in ("rename", "delete"):
            response = client.post(
                f"/account/passkeys/{other.id}/{verb}",
                data={"csrf_token": csrf_token(page), "name": "x"},
            )
            assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND)
