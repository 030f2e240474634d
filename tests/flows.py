"""Drive the login flow with Flask's test client, as a browser would."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import PASSWORD
from tests.factories import REDIRECT_URI
from tests.factories import Pkce

CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(response: TestResponse) -> str:
    match = CSRF_PATTERN.search(response.get_data(as_text=True))
    assert match, "the page has no CSRF token"
    return match.group(1)


def http_login(
    browser: requests.Session,
    page: requests.Response,
    email: str,
    password: str = PASSWORD,
    **kw: Any,
) -> requests.Response:
    """Both login screens over real HTTP, from the e-mail page ``page``;
    ``kw`` goes to the password POST (``allow_redirects=False``, say)."""

    def post(page: requests.Response, data: dict[str, str], **kw: Any) -> requests.Response:
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action, page.text
        csrf = CSRF_PATTERN.search(page.text)
        assert csrf, page.text
        url = urljoin(page.url, html.unescape(action.group(1)))
        return browser.post(url, data={**data, "csrf_token": csrf.group(1)}, timeout=10, **kw)

    password_page = post(page, {"email": email})
    assert password_page.status_code == 200, password_page.text
    return post(password_page, {"password": password}, **kw)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(client_id: str, pkce: Pkce | None = None, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email offline_access",
        "state": "state-123",
        "nonce": "nonce-456",
    }
    if pkce is not None:
        params["code_challenge"] = pkce.challenge
        params["code_challenge_method"] = "S256"
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def authorize(browser: FlaskClient, params: dict[str, str]) -> TestResponse:
    return browser.get("/authorize?" + urlencode(params))


def screen(browser: FlaskClient, where: TestResponse | str) -> TestResponse:
    """A login screen: ``where`` itself (an answer with the screen, as
    /authorize and each login form give) or its URL, opened."""
    page = browser.get(where) if isinstance(where, str) else where
    assert page.status_code == 200, page.get_data(as_text=True)
    return page


def submit_email(
    browser: FlaskClient, where: TestResponse | str, email: str, **form: str
) -> TestResponse:
    """The first login screen: type the e-mail address; returns the answer
    (the password screen)."""
    response = form_post(browser, screen(browser, where), {"email": email, **form})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def submit_password(
    browser: FlaskClient, where: TestResponse | str, password: str = PASSWORD
) -> TestResponse:
    return form_post(browser, screen(browser, where), {"password": password})


def submit_login(
    browser: FlaskClient, where: TestResponse | str, email: str, password: str = PASSWORD
) -> TestResponse:
    """Both login screens from the e-mail screen: the address, then the password."""
    return submit_password(browser, submit_email(browser, where, email), password)


def is_login_screen(response: TestResponse) -> bool:
    """The e-mail screen (an authorization request that needs a login)."""
    return response.status_code == 200 and 'name="email"' in response.get_data(as_text=True)


def login_for_code(
    browser: FlaskClient, client_id: str, email: str, pkce: Pkce, **extra: str
) -> dict[str, str]:
    """Authorize, log in, and return the parameters of the redirect to the client."""
    response = authorize(browser, authorize_params(client_id, pkce, **extra))
    if is_login_screen(response):
        response = submit_login(browser, response, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.location.startswith(REDIRECT_URI), response.location
    return query(response.location)


def exchange(
    browser: FlaskClient,
    client_id: str,
    secret: str | None,
    code: str,
    pkce: Pkce | None,
    **extra: Any,
) -> TestResponse:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if pkce is not None:
        data["code_verifier"] = pkce.verifier
    data.update(extra)
    if secret is None:
        data["client_id"] = client_id
        return browser.post("/token", data=data)
    return browser.post("/token", data=data, auth=(client_id, secret))


def form_action(page: TestResponse) -> str:
    """Where the first form of ``page`` (a plain ``<form method="post">``) goes."""
    found = re.search(r'<form method="post" action="([^"]+)"', page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)
    return html.unescape(found.group(1))


def form_post(browser: FlaskClient, page: TestResponse, data: dict[str, str]) -> TestResponse:
    """Submit the first form of ``page`` with ``data``."""
    return browser.post(form_action(page), data={"csrf_token": csrf_token(page), **data})


def follow(browser: FlaskClient, response: TestResponse) -> TestResponse:
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser.get(response.location)


def totp_key(page: TestResponse) -> str:
    """The authenticator key shown under the QR code."""
    found = re.search(r'id="totp-key">([^<]+)<', page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)
    return found.group(1).replace(" ", "")
