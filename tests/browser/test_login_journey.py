"""Journey J3 in a real browser: e-mail first, password, second factor, "Prøv en
anden måde", the emergency code, the forgotten password and single sign-on."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.factories import PASSWORD
from tests.factories import Enrolment
from tests.factories import Factory

EMAIL = "kim@example.com"
PHONE = "+4520123160"
NEW_PASSWORD = "Solsikke#Have42"


def _account(live_server, **factors) -> Enrolment:  # type: ignore[no-untyped-def]
    factory = Factory(live_server)
    user = factory.user(EMAIL, name="Kim Kimsen", given_name="Kim", mfa_required=True)
    return factory.enrol(user, **factors)


def _email_and_password(page: Page, portal: str, password: str = PASSWORD) -> None:
    page.goto(portal + "/login")
    expect(page.get_by_role("heading", name="Log ind")).to_be_visible()
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()
    expect(page.locator("#login-email")).to_have_text(EMAIL)
    page.get_by_label("Adgangskode", exact=True).fill(password)
    page.get_by_role("button", name="Log ind").click()


def _try_another_way(page: Page, choice: str) -> None:
    """ "Prøv en anden måde", then the choice whose text starts with ``choice``."""
    page.get_by_role("link", name="Prøv en anden måde").click()
    page.locator("ul.methods").get_by_text(choice).click()


def _claims(page: Page, portal: str) -> dict:  # type: ignore[type-arg]
    expect(page.get_by_text("Velkommen Kim")).to_be_visible()
    return page.request.get(portal + "/claims.json").json()["id_token"]


def test_login_with_the_authenticator_app(page: Page, live_server, portal):
    enrolment = _account(live_server)
    page.goto(portal + "/login")
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()

    # The eye shows and hides the password.
    field = page.get_by_label("Adgangskode", exact=True)
    field.fill(PASSWORD)
    expect(field).to_have_attribute("type", "password")
    page.get_by_role("button", name="Vis adgangskode").click()
    expect(field).to_have_attribute("type", "text")
    page.get_by_role("button", name="Skjul adgangskode").click()
    expect(field).to_have_attribute("type", "password")
    page.get_by_role("button", name="Log ind").click()

    expect(page.get_by_text("Find koden i din Authenticator app.")).to_be_visible()
    page.get_by_label("Indtast din sikkerhedskode").fill(enrolment.totp_code())
    page.get_by_role("button", name="Kontrollér").click()
    claims = _claims(page, portal)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "2fa"


def test_login_with_sms_through_another_way(page: Page, live_server, portal):
    _account(live_server, phone=PHONE)
    _email_and_password(page, portal)
    _try_another_way(page, "Få sikkerhedskoden sendt som en SMS")
    expect(
        page.get_by_text(
            "Vi har sendt en SMS med en 6-cifret bekræftelseskode til dit telefonnummer, "
            "der slutter med 160."
        )
    ).to_be_visible()
    reference = re.search(r"Referencenummer: (\d{4})", page.content()).group(1)
    (sms,) = live_server.extensions["idp"].sms_sender.messages()
    assert sms.to == PHONE
    assert f"Referencenummer: {reference}" in sms.text
    page.get_by_label("Sikkerhedskode").fill(re.search(r"\b(\d{6})\b", sms.text).group(1))
    page.get_by_role("button", name="Kontrollér").click()
    assert _claims(page, portal)["amr"] == ["pwd", "sms", "mfa"]


def test_login_with_the_emergency_code_shows_a_new_one(page: Page, live_server, portal):
    enrolment = _account(live_server)
    _email_and_password(page, portal)
    _try_another_way(page, "Brug din engangskode til nødsituationer")
    page.get_by_label("Engangskode til nødsituationer").fill(
        enrolment.emergency_code.lower().replace("-", " ")
    )
    page.get_by_role("button", name="Kontrollér").click()
    expect(
        page.get_by_role("heading", name="Gem din nye engangskode til nødsituationer")
    ).to_be_visible()
    new_code = page.locator("#emergency-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){4}", new_code)
    assert new_code != enrolment.emergency_code
    page.get_by_label("Jeg har sikkert kopieret og gemt denne kode.").check()
    page.get_by_role("button", name="Næste").click()
    _claims(page, portal)
    (mail,) = live_server.extensions["idp"].mailer.messages()
    assert mail.subject == "Din engangskode til nødsituationer er blevet brugt"


def test_forgotten_password_end_to_end(page: Page, live_server, portal):
    enrolment = _account(live_server)
    page.goto(portal + "/login")
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()
    page.get_by_role("link", name="Har du glemt din adgangskode?").click()
    expect(page.get_by_label("E-mailadresse")).to_have_value(EMAIL)
    page.get_by_role("button", name="Send link").click()
    expect(page.get_by_role("heading", name="Tjek din e-mail")).to_be_visible()
    live_server.extensions["idp"].background.wait()  # the e-mail goes out after the answer

    (mail,) = live_server.extensions["idp"].mailer.messages()
    link = next(link for link in mail.links() if "/reset/" in link)
    page.goto(link)
    expect(page.get_by_role("heading", name="Vælg en ny adgangskode")).to_be_visible()
    page.get_by_label("Ny adgangskode").fill("kort")
    page.get_by_label("Bekræft adgangskode").fill("kort")
    page.get_by_role("button", name="Angiv adgangskode").click()
    expect(page.locator("ul.errors")).to_contain_text("mindst 8 tegn")
    page.get_by_label("Ny adgangskode").fill(NEW_PASSWORD)
    page.get_by_label("Bekræft adgangskode").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Angiv adgangskode").click()
    expect(page.get_by_role("heading", name="Din adgangskode er blevet ændret")).to_be_visible()

    # "Log ind" leads back through the portal; the second factor is still asked for.
    page.get_by_role("link", name="Log ind").click()
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()
    page.get_by_label("Adgangskode", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log ind").click()
    page.get_by_label("Indtast din sikkerhedskode").fill(enrolment.totp_code())
    page.get_by_role("button", name="Kontrollér").click()
    _claims(page, portal)
    subjects = [m.subject for m in live_server.extensions["idp"].mailer.messages()]
    assert "Din adgangskode er blevet ændret" in subjects


def test_remembered_email_is_prefilled_until_the_back_arrow(page: Page, live_server, portal):
    enrolment = _account(live_server, emergency=False)
    page.goto(portal + "/login")
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_label("Gem min e-mailadresse til næste gang").check()
    expect(page.get_by_text("Anbefales ikke til offentlige eller delte computere.")).to_be_visible()
    page.get_by_role("button", name="Næste").click()
    page.get_by_label("Adgangskode", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log ind").click()
    page.get_by_label("Indtast din sikkerhedskode").fill(enrolment.totp_code())
    page.get_by_role("button", name="Kontrollér").click()
    _claims(page, portal)
    (remembered,) = [c for c in page.context.cookies() if c["name"] == "idp_email"]
    assert remembered["value"] == EMAIL
    assert remembered["httpOnly"]
    assert remembered["expires"] > time.time() + 300 * 24 * 3600

    # Next time (a new login is asked for) the address is filled in.
    page.goto(portal + "/login?prompt=login")
    expect(page.get_by_label("E-mailadresse", exact=True)).to_have_value(EMAIL)
    expect(page.get_by_label("Gem min e-mailadresse til næste gang")).to_be_checked()
    page.get_by_role("button", name="Næste").click()
    # The back arrow: another address, and the remembered one is forgotten.
    page.get_by_role("button", name="Brug en anden e-mailadresse").click()
    expect(page.get_by_label("E-mailadresse", exact=True)).to_have_value("")
    assert not [c for c in page.context.cookies() if c["name"] == "idp_email"]


def test_single_sign_on_into_a_second_product(page: Page, live_server, portal, academy):
    enrolment = _account(live_server)
    _email_and_password(page, portal)
    page.get_by_label("Indtast din sikkerhedskode").fill(enrolment.totp_code())
    page.get_by_role("button", name="Kontrollér").click()
    _claims(page, portal)

    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url))
    page.goto(academy + "/")
    expect(page.get_by_text("Velkommen til Akademiet, Kim")).to_be_visible()
    claims = page.request.get(academy + "/claims.json").json()["id_token"]
    assert claims["aud"] == ["academy"]
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    # No IdP screen shown: the IdP's answers were redirects only.
    assert visited
    assert not [url for url in visited if url.startswith(live_server.base_url)]
