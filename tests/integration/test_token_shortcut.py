"""The client-credentials shortcut: the plain, valid request is answered before
Flask with the full endpoint's answer; every other request reaches the full
endpoint untouched and gets its answer."""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Any

import pytest
from joserfc import jwt

from idp.oidc.shortcuts import TokenShortcut

SCOPES = ["openid", "profile", "email"]


@pytest.fixture
def shortcut(app) -> TokenShortcut:  # type: ignore[no-untyped-def]
    found = app.wsgi_app
    while not isinstance(found, TokenShortcut):
        found = found.wsgi_app
    return found


@pytest.fixture
def full_endpoint_calls(shortcut: TokenShortcut) -> list[str]:
    """The paths of the requests that went on past the shortcut."""
    calls: list[str] = []
    inner = shortcut.wsgi_app

    def spy(environ, start_response):  # type: ignore[no-untyped-def]
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    shortcut.wsgi_app = spy
    return calls


@pytest.fixture
def service(factory) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    client, secret = factory.client("reports", scopes=SCOPES)
    return client.client_id, secret


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _verify(app, token: str) -> tuple[dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    decoded = jwt.decode(token, app.extensions["idp"].keyring.keyset)
    app.extensions["idp"].tokens.verify_access_token(token)  # our own checks too
    return decoded.header, decoded.claims


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
@pytest.mark.parametrize("by", ["basic", "post"])
def test_plain_request_is_answered_by_the_shortcut(  # type: ignore[no-untyped-def]
    app, client, factory, full_endpoint_calls, alg, by
):
    _, secret = factory.client("svc", scopes=SCOPES, signing_alg=alg)
    data = {"grant_type": "client_credentials", "scope": "profile email"}
    if by == "basic":
        response = client.post("/token", data=data, headers=_basic("svc", secret))
    else:
        response = client.post("/token", data={**data, "client_id": "svc", "client_secret": secret})
    assert response.status_code == HTTPStatus.OK
    assert full_endpoint_calls == []
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["scope"]) == ("Bearer", "profile email")
    header, claims = _verify(app, body["access_token"])
    assert (header["alg"], header["typ"]) == (alg, "at+jwt")
    assert header["kid"] == app.extensions["idp"].keyring.signing_key(alg).kid
    assert claims["sub"] == claims["client_id"] == claims["aud"] == "svc"
    assert body["expires_in"] == claims["exp"] - claims["iat"]


def test_answer_is_the_full_endpoints(app, client, service, shortcut):  # type: ignore[no-untyped-def]
    client_id, secret = service
    data = {"grant_type": "client_credentials", "scope": "openid phone profile"}
    fast = client.post("/token", data=data, headers=_basic(client_id, secret))
    shortcut_call = TokenShortcut.__call__
    try:  # the same request with the shortcut stepping aside
        TokenShortcut.__call__ = lambda self, environ, start: self.wsgi_app(environ, start)  # type: ignore[method-assign]
        full = client.post("/token", data=data, headers=_basic(client_id, secret))
    finally:
        TokenShortcut.__call__ = shortcut_call  # type: ignore[method-assign]
    assert fast.status_code == full.status_code == HTTPStatus.OK
    for name in ("Content-Type", "Cache-Control", "Pragma", "X-Content-Type-Options"):
        assert fast.headers[name] == full.headers[name], name
    fast_body, full_body = fast.json, full.json
    assert {k: v for k, v in fast_body.items() if k != "access_token"} == {
        k: v for k, v in full_body.items() if k != "access_token"
    }
    assert fast_body["scope"] == "openid profile"  # phone is not the client's
    fast_header, fast_claims = _verify(app, fast_body["access_token"])
    full_header, full_claims = _verify(app, full_body["access_token"])
    assert fast_header == full_header
    varying = {"jti", "iat", "exp"}
    assert {k: v for k, v in fast_claims.items() if k not in varying} == {
        k: v for k, v in full_claims.items() if k not in varying
    }


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong secret", 401, "invalid_client"),
        ("unknown client", 401, "invalid_client"),
        ("unknown scope", 400, "invalid_scope"),
        ("grant not registered", 400, "unauthorized_client"),
        ("duplicated parameter", 400, "invalid_request"),
        ("secret in header and body", None, None),
        ("malformed basic header", 401, "invalid_client"),
        ("no credentials", 401, "invalid_client"),
    ],
)
def test_anything_else_reaches_the_full_endpoint(  # type: ignore[no-untyped-def]
    client, factory, service, full_endpoint_calls, case, status, error
):
    client_id, secret = service
    _, narrow_secret = factory.client("narrow", grant_types=["authorization_code"])
    data: Any = {"grant_type": "client_credentials"}
    headers = _basic(client_id, secret)
    if case == "wrong secret":
        headers = _basic(client_id, secret + "x")
    elif case == "unknown client":
        headers = _basic("nobody", secret)
    elif case == "unknown scope":
        data["scope"] = "openid admin"
    elif case == "grant not registered":
        headers = _basic("narrow", narrow_secret)
    elif case == "duplicated parameter":
        data = "grant_type=client_credentials&scope=openid&scope=email"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif case == "secret in header and body":
        data.update(client_id=client_id, client_secret=secret)
    elif case == "malformed basic header":
        headers = {"Authorization": "Basic %%%"}
    elif case == "no credentials":
        headers = {}
    response = client.post("/token", data=data, headers=headers)
    assert full_endpoint_calls == ["/token"]
    if status is not None:
        assert response.status_code == status
        assert response.json["error"] == error


def test_request_the_shortcut_read_still_reaches_the_full_endpoint_whole(  # type: ignore[no-untyped-def]
    client, service, full_endpoint_calls
):
    """An extra parameter makes the request unusual: the full endpoint answers
    it from the same body the shortcut read."""
    client_id, secret = service
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "email", "audience": "x"},
        headers=_basic(client_id, secret),
    )
    assert full_endpoint_calls == ["/token"]
    assert response.status_code == HTTPStatus.OK
    assert response.json["scope"] == "email"


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=x", "text/plain"]
)
def test_other_bodies_are_not_read(client, service, full_endpoint_calls, content_type):  # type: ignore[no-untyped-def]
    client_id, secret = service
    response = client.post(
        "/token",
        data=b"grant_type=client_credentials",
        headers={**_basic(client_id, secret), "Content-Type": content_type},
    )
    assert full_endpoint_calls == ["/token"]
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_other_grants_and_paths_pass_by(client, service, full_endpoint_calls):  # type: ignore[no-untyped-def]
    client_id, secret = service
    client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=_basic(client_id, secret),
    )
    client.get("/token")
    client.post("/introspect", data={"token": "x"}, headers=_basic(client_id, secret))
    assert full_endpoint_calls == ["/token", "/token", "/introspect"]
