"""The portal logs a user in through the running IdP and shows their claims."""

from __future__ import annotations

import re
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


def test_home_page_is_journey_j4_from_the_claims(live_server, portal):
    user = Factory(live_server).user(organization="MS_Test_03")
    browser = requests.Session()
    home = _log_in(browser, portal, user.email).text
    for item in (
        "Hjem",
        "Mine sager",
        "Nyheder",
        "Hjælpecenteret",
        "Kurser &amp; Webinarer",
        "Drift &amp; Release",
        "Kalender",
        "Opret en sag",
        "Kontakt os",
        "Opret en sag eller se status på igangværende sager",
        "Find vejledninger til dine produkter og hjælp til selvbetjening",
        "Her kan du finde vigtige datoer og opgaver at være opmærksom på",
        "Din Key Account Manager",
    ):
        assert item in home, item
    assert '<span id="user-name">Kim Testesen</span>' in home
    assert '<span id="user-org">MS_Test_03</span>' in home
    assert '<p id="profile-title">HR assistent</p>' in home


def test_cases_are_kept_per_user(live_server, portal):
    factory = Factory(live_server)
    kim, ann = factory.user(), factory.user()
    browser = requests.Session()
    _log_in(browser, portal, kim.email)
    page = browser.get(portal + "/sager", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    empty = browser.post(portal + "/sager", data={"csrf_token": token, "title": " "}, timeout=10)
    assert empty.status_code == HTTPStatus.BAD_REQUEST
    assert "Giv sagen en overskrift." in empty.text
    created = browser.post(
        portal + "/sager",
        data={"csrf_token": token, "title": "Løn til ny medarbejder", "text": "Hjælp"},
        timeout=10,
    )
    assert "Løn til ny medarbejder" in created.text
    assert "Modtaget" in created.text
    other = requests.Session()
    _log_in(other, portal, ann.email)
    assert "Løn til ny medarbejder" not in other.get(portal + "/sager", timeout=10).text
    forged = other.post(portal + "/sager", data={"title": "x"}, timeout=10)
    assert forged.status_code == HTTPStatus.BAD_REQUEST  # no CSRF token


def test_back_channel_endpoint_refuses_forged_tokens(live_server, portal):
    answer = requests.post(
        portal + "/backchannel-logout", data={"logout_token": "not.a.token"}, timeout=10
    )
    assert answer.status_code == HTTPStatus.BAD_REQUEST
