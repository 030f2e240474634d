"""Passkeys and security keys in headless Chromium, with Chromium's virtual
authenticator (DevTools protocol). It belongs to one tab; a ceremony with no
authenticator would wait for one, so every step is awaited with the page's
timeout and fails the test instead of hanging it."""

from __future__ import annotations

from playwright.sync_api import Page
from playwright.sync_api import expect

from idp.db import get_session
from idp.invitations import invite
from idp.services.accounts import UserProfile
from tests.factories import PASSWORD
from tests.factories import Factory

EMAIL = "kim@example.com"


def add_authenticator(page: Page, **options: object) -> tuple:  # type: ignore[type-arg]
    """A virtual authenticator in this tab: a platform passkey provider by
    default (internal, resident keys, user verification)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    settings = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
        **options,
    }
    found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": settings})
    return cdp, found["authenticatorId"]


def presence(cdp, authenticator: str, enabled: bool) -> None:  # type: ignore[no-untyped-def]
    """Whether the authenticator answers at once (the user touches it)."""
    cdp.send(
        "WebAuthn.setAutomaticPresenceSimulation",
        {"authenticatorId": authenticator, "enabled": enabled},
    )


def passkey_button(page: Page, portal: str, cdp, authenticator: str) -> None:  # type: ignore[no-untyped-def]
    """Log out, open the portal's login, and press the passkey button. The
    autofill offer (conditional UI) starts as the page loads; the
    authenticator waits until it is on screen, so the button takes over."""
    log_out_everywhere(page)
    presence(cdp, authenticator, enabled=False)
    page.goto(portal + "/login")
    expect(page.get_by_label("E-mailadresse", exact=True)).to_be_visible()
    presence(cdp, authenticator, enabled=True)
    page.get_by_role("link", name="Log ind med sikkerhedsnøgle eller biometri").click()


def log_out_everywhere(page: Page) -> None:
    for name in ("idp_session", "portal_session"):
        page.context.clear_cookies(name=name)


def claims(page: Page, portal: str) -> dict:  # type: ignore[type-arg]
    expect(page.get_by_text("Velkommen Kim")).to_be_visible()
    return page.request.get(portal + "/claims.json").json()["id_token"]


def password_login(page: Page, start: str) -> None:
    """Open ``start`` and log in there with the e-mail and the password."""
    page.goto(start)
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()
    page.get_by_label("Adgangskode", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log ind").click()


def test_activation_with_a_passkey_then_passwordless_login(page: Page, live_server, portal):
    cdp, authenticator = add_authenticator(page)
    with live_server.app_context():
        invite(get_session(), EMAIL, UserProfile(name="Kim Kimsen", given_name="Kim"), "portal")
    (mail,) = live_server.extensions["idp"].mailer.messages()
    page.goto(next(link for link in mail.links() if "/activate/" in link))
    page.get_by_role("link", name="Log ind uden adgangskode").click()
    page.get_by_role("button", name="Opret en adgangsnøgle").click()
    expect(
        page.get_by_role("heading", name="Gem din engangskode til nødsituationer")
    ).to_be_visible()
    page.get_by_label("Jeg har sikkert kopieret og gemt denne kode.").check()
    page.get_by_role("button", name="Næste").click()
    expect(page.get_by_role("heading", name="Din adgangsnøgle er klar")).to_be_visible()
    page.get_by_role("button", name="Næste").click()
    assert claims(page, portal)["amr"] == ["hwk", "mfa"]

    # Later, with no session: the browser offers the passkey in the e-mail
    # field's autofill (conditional UI); the virtual authenticator picks it.
    log_out_everywhere(page)
    page.goto(portal + "/login")
    assert claims(page, portal)["amr"] == ["hwk", "mfa"]

    # And with the button.
    passkey_button(page, portal, cdp, authenticator)
    found = claims(page, portal)
    assert found["amr"] == ["hwk", "mfa"]
    assert found["acr"] == "2fa"


def test_security_key_as_second_factor(page: Page, live_server, portal):
    Factory(live_server).user(EMAIL, name="Kim Kimsen", given_name="Kim")
    add_authenticator(page, transport="usb", hasResidentKey=False)
    # Log in with the password, add the key on the account page.
    password_login(page, live_server.base_url + "/account")
    page.get_by_label("Navn på den nye adgangsnøgle").fill("Nøglering")
    page.get_by_role("button", name="Tilføj en adgangsnøgle").click()
    expect(page.get_by_text("Adgangsnøglen er tilføjet.")).to_be_visible()

    log_out_everywhere(page)
    password_login(page, portal + "/login")
    expect(
        page.get_by_text("Brug din adgangsnøgle, eller indsæt din sikkerhedsnøgle.")
    ).to_be_visible()
    page.get_by_role("button", name="Brug sikkerhedsnøgle").click()
    assert claims(page, portal)["amr"] == ["pwd", "hwk", "mfa"]


def test_a_deleted_key_no_longer_logs_in(page: Page, live_server, portal):
    Factory(live_server).user(EMAIL, name="Kim Kimsen", given_name="Kim")
    cdp, authenticator = add_authenticator(page)
    password_login(page, live_server.base_url + "/account")
    page.get_by_role("button", name="Tilføj en adgangsnøgle").click()
    expect(page.get_by_text("Adgangsnøglen er tilføjet.")).to_be_visible()
    page.get_by_role("button", name="Fjern Adgangsnøgle").click()
    expect(page.get_by_text("Adgangsnøglen er fjernet.")).to_be_visible()

    # The authenticator still holds the key; the IdP no longer knows it.
    passkey_button(page, portal, cdp, authenticator)
    expect(page.get_by_text("kunne ikke bruges")).to_be_visible()
    expect(page.get_by_text("Velkommen Kim")).not_to_be_visible()


def test_a_refused_request_gets_a_clear_message(page: Page, live_server, portal):
    # The user does not confirm (no fingerprint, no PIN): the browser refuses.
    add_authenticator(page, isUserVerified=False)
    page.goto(portal + "/login")
    page.get_by_role("link", name="Log ind med sikkerhedsnøgle eller biometri").click()
    expect(page.get_by_role("alert")).to_contain_text("Prøv igen")
    expect(page.get_by_label("E-mailadresse", exact=True)).to_be_visible()
