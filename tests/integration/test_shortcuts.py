"""The client-credentials shortcut: the plain, valid request is answered before
Flask with the full endpoint's answer; every other request reaches the full
endpoint untouched and gets its answer."""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt

from idp.db import get_session
from idp.db import make_engine
from idp.models import User
from idp.oidc.shortcuts import Shortcuts
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import exchange
from tests.flows import login_for_code
from tests.flows import query

SCOPES = ["openid", "profile", "email"]


@pytest.fixture
def shortcut(app) -> Shortcuts:  # type: ignore[no-untyped-def]
    found = app.wsgi_app
    while not isinstance(found, Shortcuts):
        found = found.wsgi_app
    return found


@pytest.fixture
def full_endpoint_calls(shortcut: Shortcuts) -> list[str]:
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
    shortcut_call = Shortcuts.__call__
    try:  # the same request with the shortcut stepping aside
        Shortcuts.__call__ = lambda self, environ, start: self.wsgi_app(environ, start)  # type: ignore[method-assign]
        full = client.post("/token", data=data, headers=_basic(client_id, secret))
    finally:
        Shortcuts.__call__ = shortcut_call  # type: ignore[method-assign]
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


# -- UserInfo and introspection -------------------------------------------------------------
@pytest.fixture
def user_tokens(client, factory):  # type: ignore[no-untyped-def]
    """A user's tokens from a real code exchange, with the portal's secret."""
    _, secret = factory.client("portal")
    user = factory.user("kim@example.com")
    pkce = Pkce.new()
    code = login_for_code(
        client, "portal", user.email, pkce, scope="openid profile email offline_access"
    )["code"]
    tokens = exchange(client, "portal", secret, code, pkce).get_json()
    return user, secret, tokens


def _without_shortcuts(client, method, path, **kwargs):  # type: ignore[no-untyped-def]
    original = Shortcuts.__call__
    try:
        Shortcuts.__call__ = lambda self, environ, start: self.wsgi_app(environ, start)  # type: ignore[method-assign]
        return client.open(path, method=method, **kwargs)
    finally:
        Shortcuts.__call__ = original  # type: ignore[method-assign]


def test_userinfo_is_answered_by_the_shortcut_as_by_the_full_endpoint(  # type: ignore[no-untyped-def]
    client, user_tokens, full_endpoint_calls
):
    user, _, tokens = user_tokens
    headers = {"Authorization": "Bearer " + tokens["access_token"]}
    fast = client.get("/userinfo", headers=headers)
    assert full_endpoint_calls == []
    full = _without_shortcuts(client, "GET", "/userinfo", headers=headers)
    assert fast.status_code == full.status_code == HTTPStatus.OK
    assert fast.json == full.json
    assert fast.json["email"] == user.email
    assert fast.json["name"] == "Kim Testesen"
    for name in ("Content-Type", "Cache-Control", "X-Content-Type-Options"):
        assert fast.headers[name] == full.headers[name], name


@pytest.mark.parametrize(
    "case", ["no token", "bad signature", "revoked grant", "disabled user", "no openid", "POST"]
)
def test_userinfo_errors_come_from_the_full_endpoint(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, case
):
    user, secret, tokens = user_tokens
    token = tokens["access_token"]
    services = app.extensions["idp"]
    method, expected = "GET", HTTPStatus.UNAUTHORIZED
    if case == "bad signature":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    elif case == "revoked grant":
        with app.app_context():
            claims = services.tokens.verify_access_token(token).claims
            services.tokens.revoke_grant(get_session(), claims["gid"])
    elif case == "disabled user":
        with app.app_context():
            get_session().get(User, user.id).is_active = False
            get_session().commit()
    elif case == "no openid":
        response = client.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "profile"},
            headers=_basic("portal", secret),
        )
        token = response.json["access_token"]
        expected = HTTPStatus.FORBIDDEN
    elif case == "POST":
        method, expected = "POST", HTTPStatus.OK
    headers = {} if case == "no token" else {"Authorization": "Bearer " + token}
    response = client.open("/userinfo", method=method, headers=headers)
    assert full_endpoint_calls[-1:] == ["/userinfo"]
    assert response.status_code == expected
    if expected != HTTPStatus.OK:
        assert "WWW-Authenticate" in response.headers


def test_introspection_is_answered_by_the_shortcut_as_by_the_full_endpoint(  # type: ignore[no-untyped-def]
    client, user_tokens, full_endpoint_calls
):
    _, secret, tokens = user_tokens
    data = {"token": tokens["access_token"], "token_type_hint": "access_token"}
    fast = client.post("/introspect", data=data, headers=_basic("portal", secret))
    assert full_endpoint_calls == []
    full = _without_shortcuts(
        client, "POST", "/introspect", data=data, headers=_basic("portal", secret)
    )
    assert fast.status_code == full.status_code == HTTPStatus.OK
    assert fast.json == full.json
    assert fast.json["active"] is True
    for name in ("Content-Type", "Cache-Control", "Pragma"):
        assert fast.headers[name] == full.headers[name], name


@pytest.mark.parametrize(
    "case", ["refresh token", "another client", "wrong secret", "revoked", "unknown hint"]
)
def test_introspection_of_anything_else_comes_from_the_full_endpoint(  # type: ignore[no-untyped-def]
    app, client, factory, user_tokens, full_endpoint_calls, case
):
    _, secret, tokens = user_tokens
    data = {"token": tokens["access_token"]}
    headers = _basic("portal", secret)
    if case == "refresh token":
        data["token"] = tokens["refresh_token"]
    elif case == "another client":
        _, other = factory.client("other")
        headers = _basic("other", other)
    elif case == "wrong secret":
        headers = _basic("portal", secret + "x")
    elif case == "revoked":
        assert client.post("/revoke", data=data, headers=headers).status_code == HTTPStatus.OK
    elif case == "unknown hint":
        data["token_type_hint"] = "id_token"
    response = client.post("/introspect", data=data, headers=headers)
    assert full_endpoint_calls[-1:] == ["/introspect"]
    if case == "wrong secret":
        assert response.status_code == HTTPStatus.UNAUTHORIZED
    elif case == "refresh token":
        assert response.json["active"] is True
    elif case != "unknown hint":
        assert response.json == {"active": False}


# -- refresh ---------------------------------------------------------------------------------
def _refresh(client, secret, token, **extra):  # type: ignore[no-untyped-def]
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return client.post("/token", data=data, headers=_basic("portal", secret))


def test_refresh_is_answered_in_one_statement_on_postgresql(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls
):
    _, secret, tokens = user_tokens
    first = _refresh(client, secret, tokens["refresh_token"])
    on_postgresql = app.extensions["idp.statement_engine"].dialect.name == "postgresql"
    assert full_endpoint_calls == ([] if on_postgresql else ["/token"])
    assert first.status_code == HTTPStatus.OK
    body = first.json
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["scope"] == "openid profile email offline_access"
    _, claims = _verify(app, body["access_token"])
    original = _verify(app, tokens["access_token"])[1]
    for name in ("sub", "gid", "sid", "auth_time", "acr", "amr", "client_id", "scope"):
        assert claims[name] == original[name], name
    # The successor works once more; the spent token, replayed, ends the grant.
    second = _refresh(client, secret, body["refresh_token"])
    assert second.status_code == HTTPStatus.OK
    replay = _refresh(client, secret, tokens["refresh_token"])
    assert replay.status_code == HTTPStatus.BAD_REQUEST
    assert replay.json["error"] == "invalid_grant"
    assert full_endpoint_calls[-1:] == ["/token"]
    after = _refresh(client, secret, second.json["refresh_token"])
    assert after.json["error"] == "invalid_grant"


@pytest.mark.parametrize("case", ["another client", "disabled user", "narrower scope", "unknown"])
def test_refresh_otherwise_takes_the_full_path_and_changes_nothing_first(  # type: ignore[no-untyped-def]
    app, client, factory, user_tokens, full_endpoint_calls, case
):
    user, secret, tokens = user_tokens
    token = tokens["refresh_token"]
    if case == "another client":
        _, other = factory.client("other")
        response = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            headers=_basic("other", other),
        )
    elif case == "disabled user":
        with app.app_context():
            get_session().get(User, user.id).is_active = False
            get_session().commit()
        response = _refresh(client, secret, token)
    elif case == "narrower scope":
        response = _refresh(client, secret, token, scope="openid")
    else:
        response = _refresh(client, secret, "not-a-token")
    assert full_endpoint_calls == ["/token"]
    if case == "narrower scope":
        assert response.status_code == HTTPStatus.OK
        assert response.json["scope"] == "openid"
        return
    assert response.json["error"] == "invalid_grant"
    if case == "another client":  # the owner's token was not spent by the attempt
        assert _refresh(client, secret, token).status_code == HTTPStatus.OK


def test_a_failing_shortcut_hands_the_request_to_the_full_endpoint(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, caplog
):
    """The shortcuts' engine skips the pre-use ping: a dropped connection fails
    the shortcut, and the full endpoint (with its pinged pool) answers."""
    _, _, tokens = user_tokens
    healthy = app.extensions["idp.statement_engine"]
    app.extensions["idp.statement_engine"] = make_engine("postgresql://nobody@127.0.0.1:9/none")
    try:
        response = client.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
    finally:
        app.extensions["idp.statement_engine"].dispose()
        app.extensions["idp.statement_engine"] = healthy
    assert response.status_code == HTTPStatus.OK
    assert response.json["email"] == "kim@example.com"
    assert full_endpoint_calls == ["/userinfo"]
    assert "the full endpoint answers" in caplog.text


# -- authorize with an SSO session ------------------------------------------------------------
def test_authorize_with_a_session_is_answered_by_the_shortcut_as_by_the_full_endpoint(  # type: ignore[no-untyped-def]
    client, user_tokens, full_endpoint_calls
):
    params = authorize_params("portal", Pkce.new(), nonce="n-1")
    fast = authorize(client, params)
    assert full_endpoint_calls == []
    full = _without_shortcuts(client, "GET", "/authorize?" + urlencode(params))
    assert fast.status_code == full.status_code == HTTPStatus.FOUND
    fast_query, full_query = query(fast.location), query(full.location)
    assert fast.location.split("?")[0] == full.location.split("?")[0] == REDIRECT_URI
    assert fast_query.keys() == full_query.keys() == {"code", "state", "iss"}
    assert fast_query["state"] == full_query["state"] == params["state"]
    assert fast_query["code"] != full_query["code"]
    for name in ("Content-Security-Policy", "X-Frame-Options", "Cache-Control", "Referrer-Policy"):
        assert fast.headers[name] == full.headers[name], name
    assert "Set-Cookie" not in fast.headers


def test_a_code_from_the_shortcut_is_exchanged_like_any_other(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls
):
    _, secret, _ = user_tokens
    pkce = Pkce.new()
    code = query(authorize(client, authorize_params("portal", pkce, nonce="n-2")).location)["code"]
    assert full_endpoint_calls == []
    body = exchange(client, "portal", secret, code, pkce).get_json()
    claims = jwt.decode(body["id_token"], app.extensions["idp"].keyring.keyset).claims
    assert claims["nonce"] == "n-2"
    assert claims["aud"] == ["portal"]


@pytest.mark.parametrize(
    "case", ["no session", "prompt", "max_age", "third party", "bad redirect", "repeated", "claims"]
)
def test_authorize_otherwise_takes_the_full_path(  # type: ignore[no-untyped-def]
    app, client, factory, user_tokens, full_endpoint_calls, case
):
    params = authorize_params("portal", Pkce.new())
    url = None
    if case == "no session":
        client.delete_cookie("idp_session", domain="localhost")
    elif case == "prompt":
        params["prompt"] = "login"
    elif case == "max_age":
        params["max_age"] = "0"
    elif case == "third party":
        factory.client("partner", is_first_party=False)
        params = authorize_params("partner", Pkce.new())
    elif case == "bad redirect":
        params["redirect_uri"] = "https://evil.example/cb"
    elif case == "repeated":
        url = "/authorize?" + urlencode(params) + "&scope=openid"
    elif case == "claims":
        params["claims"] = '{"userinfo": {"email": null}}'
    response = client.get(url or "/authorize?" + urlencode(params))
    assert full_endpoint_calls == ["/authorize"]
    if case in ("no session", "prompt"):
        assert "/login" in response.location
    elif case == "max_age":  # the login was this second: max_age=0 is still met
        assert response.status_code == HTTPStatus.FOUND
    elif case == "third party":
        assert "/consent" in response.location
    elif case in ("bad redirect", "repeated"):
        assert response.status_code == HTTPStatus.BAD_REQUEST or "error=" in response.location
    else:
        assert "code" in query(response.location)


def test_a_refresh_failing_after_its_rotation_is_a_server_error_not_a_replay(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, monkeypatch
):
    """Past the rotation the full path would see the spent token as a replay
    and end the grant; the shortcut answers the failure itself."""
    if app.extensions["idp.statement_engine"].dialect.name != "postgresql":
        pytest.skip("the refresh shortcut runs on PostgreSQL")
    _, secret, tokens = user_tokens

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("signing failed")

    monkeypatch.setattr(app.extensions["idp"].server, "generate_bearer_token", broken)
    response = _refresh(client, secret, tokens["refresh_token"])
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json["error"] == "server_error"
    assert response.headers["Cache-Control"] == "no-store"
    assert full_endpoint_calls == []
