"""Journeys J1 and J2 in a real browser, read and typed as a user would."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import Page
from playwright.sync_api import expect

from idp.db import get_session
from idp.invitations import invite
from idp.services.accounts import UserProfile

EMAIL = "kim.kimsen@example.com"


def _invite(app, email: str = EMAIL) -> str:  # type: ignore[no-untyped-def]
    """Send the invitation and read the link from the e-mail, as the user would."""
    with app.app_context():
        invite(
            get_session(),
            email,
            UserProfile(
                name="Kim Kimsen",
                given_name="Kim",
                job_title="HR assistent",
                organization="MS_Test_03",
            ),
            "portal",
        )
    message = next(m for m in app.extensions["idp"].mailer.messages() if m.to == email)
    assert "Aktiver konto" in message.html
    return next(link for link in message.links() if "/activate/" in link)


def _sms_code(app) -> str:  # type: ignore[no-untyped-def]
    text = app.extensions["idp"].sms_sender.messages()[0].text
    return re.search(r"\b(\d{6})\b", text).group(1)


def test_j1_new_account_activates_enrols_and_lands_in_the_portal(page: Page, live_server, portal):
    page.goto(_invite(live_server))
    expect(page.locator("h1")).to_have_text("Customer Portal")
    expect(page.get_by_text("Indtast din nye adgangskode")).to_be_visible()
    expect(page.get_by_role("link", name="Log ind uden adgangskode")).to_be_visible()

    # Fail the policy once per rule, reading the message each time.
    for password, message in [
        ("Kort#1", "mindst 8 tegn"),
        ("ingen-store#1", "stort bogstav"),
        ("IngenSpecial1", "specialtegn"),
        ("P@ssw0rd", "for almindelig"),
        ("Kim.Kimsen#2026", "e-mailadresse"),
    ]:
        page.get_by_label("Ny adgangskode").fill(password)
        page.get_by_label("Bekræft adgangskode").fill(password)
        page.get_by_role("button", name="Angiv adgangskode").click()
        expect(page.locator("ul.errors")).to_contain_text(message)

    page.get_by_label("Ny adgangskode").fill("Solsikke#Have42")
    page.get_by_label("Bekræft adgangskode").fill("Solsikke#Have42")
    page.get_by_role("button", name="Angiv adgangskode").click()

    # Authenticator app: read the key under the QR code, compute the code.
    expect(page.locator("#qr svg")).to_be_visible()
    key = page.locator("#totp-key").inner_text().replace(" ", "")
    page.get_by_label("Sikkerhedskode fra app'en").fill(pyotp.TOTP(key).now())
    page.get_by_role("button", name="Næste").click()

    # SMS: the code comes from the SMS outbox.
    expect(page.get_by_role("heading", name="Aktivér SMS for totrinsbekræftelse")).to_be_visible()
    page.get_by_label("Telefonnummer").fill("+45 42 82 21 60")
    page.get_by_role("button", name="Næste").click()
    expect(page.get_by_text("+4542822160")).to_be_visible()
    page.get_by_label("Bekræftelseskode").fill(_sms_code(live_server))
    page.get_by_role("button", name="Næste").click()

    # Emergency code: shown once, the box must be ticked.
    expect(
        page.get_by_role("heading", name="Gem din engangskode til nødsituationer")
    ).to_be_visible()
    code = page.locator("#emergency-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){4}", code)
    page.get_by_label("Jeg har sikkert kopieret og gemt denne kode.").check()
    page.get_by_role("button", name="Næste").click()

    expect(page.get_by_role("heading", name="Totrinsbekræftelse aktiveret")).to_be_visible()
    page.get_by_role("button", name="Næste").click()

    # Into the portal, logged in, with the expected claims.
    expect(page.get_by_text("Velkommen Kim")).to_be_visible()
    claims = page.request.get(portal + "/claims.json").json()
    assert claims["id_token"]["amr"] == ["pwd", "otp", "mfa"]
    assert claims["id_token"]["acr"] == "2fa"
    assert claims["userinfo"]["email"] == EMAIL
    assert claims["userinfo"]["organization"] == "MS_Test_03"
    assert claims["userinfo"]["job_title"] == "HR assistent"
    assert claims["userinfo"]["phone_number"] == "+4542822160"


def test_j2_existing_account_with_factors_only_sets_a_password(page: Page, live_server, portal):
    services = live_server.extensions["idp"]
    with live_server.app_context():
        user = services.accounts.create(EMAIL, UserProfile(name="Kim Kimsen", given_name="Kim"))
        secret = pyotp.random_base32()
        services.factors.save_totp(get_session(), user.id, secret, 0)

    page.goto(_invite(live_server))
    page.get_by_label("Ny adgangskode").fill("Solsikke#Have42")
    page.get_by_label("Bekræft adgangskode").fill("Solsikke#Have42")
    page.get_by_role("button", name="Angiv adgangskode").click()
    expect(page.get_by_role("heading", name="Din adgangskode er gemt")).to_be_visible()
    page.get_by_role("button", name="Næste").click()

    # Nothing was enrolled again; the portal asks for a normal login.
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()
    page.get_by_label("Adgangskode", exact=True).fill("Solsikke#Have42")
    page.get_by_role("button", name="Log ind").click()
    expect(page.get_by_text("Find koden i din Authenticator app")).to_be_visible()
    page.get_by_label("Indtast din sikkerhedskode").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Kontrollér").click()
    expect(page.get_by_text("Velkommen Kim")).to_be_visible()
    with live_server.app_context():
        from idp.models import TotpCredential

        assert get_session().query(TotpCredential).count() == 1
