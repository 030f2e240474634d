"""The portal logs a user in through the running IdP and shows their claims."""

from __future__ import annotations

from http import HTTPStatus

import requests

from tests.factories import Factory
from tests.flows import http_login


def _log_in(browser: requests.Session, portal: str, email: str) -> requests.Response:
    login_page = browser.get(portal + "/login", timeout=10)
    assert login_page.status_code == HTTPStatus.OK
    assert "Customer Portal" in login_page.text  # the client's display name
    return http_login(browser, login_page, email)


def test_user_logs_into_the_portal_and_sees_their_claims(live_server, portal):
    user = Factory(live_server).user()
    browser = requests.Session()
    home = _log_in(browser, portal, user.email)
    assert home.url == portal + "/"
    assert "Velkommen Kim" in home.text
    claims = browser.get(portal + "/claims.json", timeout=10).json()
    assert claims["id_token"]["sub"] == user.subject
    assert claims["id_token"]["iss"] == live_server.base_url
    assert claims["userinfo"]["organization"] == "Testorganisation A/S"
    assert claims["userinfo"]["job_title"] == "HR assistent"


def test_portal_shows_the_error_the_idp_returned(live_server, portal):
    browser = requests.Session()
    answer = browser.get(portal + "/login?prompt=none", timeout=10)
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert "login_required" in answer.text
