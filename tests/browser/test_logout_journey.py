"""Single sign-on across the two products, and logout that reaches both: an
admin revoking the sessions, the user logging out of the portal, and a
product that was down while it happened."""

from __future__ import annotations

import time

from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.factories import PASSWORD
from tests.factories import Factory

EMAIL = "kim@example.com"


def log_into_both(page: Page, portal: str, academy: str) -> None:
    page.goto(portal + "/login")
    page.get_by_label("E-mailadresse", exact=True).fill(EMAIL)
    page.get_by_role("button", name="Næste").click()
    page.get_by_label("Adgangskode", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log ind").click()
    expect(page.get_by_text("Velkommen Kim")).to_be_visible()
    expect(page.locator("#profile-title")).to_have_text("HR assistent")
    expect(page.locator("#user-org")).to_have_text("MS_Test_03")
    page.goto(academy + "/")  # no login screen: single sign-on
    expect(page.get_by_text("Velkommen til Akademiet, Kim")).to_be_visible()


def needs_login(page: Page, url: str) -> None:
    """The product no longer knows the user: its page offers or asks for a login."""
    page.goto(url)
    login = page.get_by_label("E-mailadresse", exact=True).or_(
        page.get_by_role("link", name="Log ind", exact=True)
    )
    expect(login.first).to_be_visible()
    expect(page.get_by_text("Kim Kimsen")).not_to_be_visible()


def kim(live_server) -> None:  # type: ignore[no-untyped-def]
    Factory(live_server).user(EMAIL, name="Kim Kimsen", given_name="Kim", organization="MS_Test_03")


def test_admin_revocation_logs_the_user_out_of_both_products(
    page: Page, browser: Browser, live_server, portal, academy
):
    factory = Factory(live_server)
    kim(live_server)
    admin = factory.user("admin@example.com", is_admin=True)
    enrolment = factory.enrol(admin)
    log_into_both(page, portal, academy)

    # An admin, in another browser, revokes all of Kim's sessions.
    other = browser.new_context(locale="da-DK")
    admin_page = other.new_page()
    admin_page.goto(live_server.base_url + "/admin/")
    admin_page.get_by_label("E-mailadresse", exact=True).fill("admin@example.com")
    admin_page.get_by_role("button", name="Næste").click()
    admin_page.get_by_label("Adgangskode", exact=True).fill(PASSWORD)
    admin_page.get_by_role("button", name="Log ind").click()
    admin_page.get_by_label("Indtast din sikkerhedskode").fill(enrolment.totp_code())
    admin_page.get_by_role("button", name="Kontrollér").click()
    admin_page.get_by_label("Søg").fill("kim")
    admin_page.get_by_role("button", name="Søg").click()
    admin_page.get_by_role("link", name=EMAIL).click()
    expect(admin_page.locator("#sessions")).to_contain_text("Customer Portal")
    expect(admin_page.locator("#sessions")).to_contain_text("Akademiet")
    form = admin_page.locator("#action-revoke-all")
    form.get_by_label("Bekræft").check()
    form.get_by_role("button", name="Tilbagekald alle sessioner").click()
    expect(admin_page.get_by_text("Ingen aktive sessioner.")).to_be_visible()
    other.close()

    # The back channel reached both products: the next page view needs a login.
    live_server.extensions["idp"].background.wait()
    needs_login(page, portal + "/")
    needs_login(page, academy + "/")


def test_logging_out_of_the_portal_logs_out_of_both(page: Page, live_server, portal, academy):
    kim(live_server)
    log_into_both(page, portal, academy)
    page.goto(portal + "/")
    page.get_by_role("button", name="Log ud").click()
    # RP-initiated logout with the ID token as hint: no question, back to the portal.
    expect(page.get_by_text("Velkommen til kundeportalen")).to_be_visible()
    live_server.extensions["idp"].background.wait()
    needs_login(page, academy + "/")


def test_a_product_that_was_down_is_told_when_it_is_back(page: Page, live_server, portal, academy):
    kim(live_server)
    log_into_both(page, portal, academy)
    products = live_server.extensions["test_products"]
    products["academy"].up = False
    page.goto(portal + "/")
    page.get_by_role("button", name="Log ud").click()
    expect(page.get_by_text("Velkommen til kundeportalen")).to_be_visible()
    live_server.extensions["idp"].background.wait()
    products["academy"].up = True
    # The sweeper retries after a second (the live server's setting).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with live_server.app_context():
            from idp.db import get_session
            from idp.models import LogoutDelivery

            rows = get_session().query(LogoutDelivery).filter_by(client_id="academy").all()
            if rows and rows[0].delivered_at is not None:
                break
        time.sleep(0.3)
    (row,) = rows
    assert row.delivered_at is not None
    assert row.attempts >= 2
    needs_login(page, academy + "/")
