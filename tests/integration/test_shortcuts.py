"""The client-credentials shortcut: the plain, valid request is answered before
Flask with the full endpoint's answer; every other request reaches the full
endpoint untouched and gets its answer."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from sqlalchemy import func
from sqlalchemy import select

from idp import clock
from idp.db import get_session
from idp.db import make_engine
from idp.models import Grant
from idp.models import User
from idp.oidc.shortcuts import SECURE_TRANSPORTS_REMEMBERED
from idp.oidc.shortcuts import Shortcuts
from idp.services import secrets
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import exchange
from tests.flows import form_action
from tests.flows import is_login_screen
from tests.flows import login_for_code
from tests.flows import query

SCOPES = ["openid", "profile", "email"]


@pytest.fixture
def shortcut(app) -> Shortcuts:  # type: ignore[no-untyped-def]
    found = app.wsgi_app
    while not isinstance(found, Shortcuts):
        found = getattr(found, "wsgi_app", None) or found.app  # ProxyFix keeps it as .app
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
    app, client, factory, user_tokens, full_endpoint_calls, monkeypatch, case
):
    params = authorize_params("portal", Pkce.new())
    url = None
    if case == "no session":
        client.delete_cookie("idp_session", domain="localhost")
    elif case == "prompt":
        params["prompt"] = "login"
    elif case == "max_age":
        params["max_age"] = "0"
        # Still the second of the login, even if the clock has ticked on since.
        keyset = app.extensions["idp"].keyring.keyset
        auth_time = jwt.decode(user_tokens[2]["id_token"], keyset).claims["auth_time"]
        monkeypatch.setattr(clock, "now", lambda: auth_time)
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
    if case in ("no session", "prompt"):  # the full endpoint's answer: the e-mail screen
        assert is_login_screen(response)
        assert form_action(response).startswith("/login?flow=")
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


# -- code exchange -----------------------------------------------------------------------------
def _on_postgresql(app) -> bool:  # type: ignore[no-untyped-def]
    return bool(app.extensions["idp.statement_engine"].dialect.name == "postgresql")


@pytest.fixture
def consumed(app, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """Every consumption of a code, by whichever path."""
    tokens = app.extensions["idp"].tokens
    calls: list[str] = []
    original = tokens.consume_code

    def spy(code: str):  # type: ignore[no-untyped-def]
        calls.append(code)
        return original(code)

    monkeypatch.setattr(tokens, "consume_code", spy)
    return calls


def _code(client, client_id: str, pkce: Pkce, **extra: str) -> str:  # type: ignore[no-untyped-def]
    return query(authorize(client, authorize_params(client_id, pkce, **extra)).location)["code"]


@pytest.mark.parametrize(
    ("by", "alg"), [("basic", "RS256"), ("post", "ES256"), ("public", "RS256")]
)
def test_code_exchange_is_answered_by_the_shortcut_as_by_the_full_endpoint(  # type: ignore[no-untyped-def]
    app, client, factory, user_tokens, full_endpoint_calls, by, alg
):
    if not _on_postgresql(app):
        pytest.skip("the code exchange shortcut runs on PostgreSQL")
    user = user_tokens[0]
    _, secret = factory.client("app", signing_alg=alg, is_public=by == "public")
    fast_pkce, full_pkce = Pkce.new(), Pkce.new()
    fast_code = _code(client, "app", fast_pkce, nonce="n-fast")
    full_code = _code(client, "app", full_pkce, nonce="n-fast")
    data = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}
    if by == "basic":
        headers = _basic("app", secret)
    else:
        headers = {}
        data.update(
            {"client_id": "app"}
            if by == "public"
            else {"client_id": "app", "client_secret": secret}
        )
    fast = client.post(
        "/token",
        data={**data, "code": fast_code, "code_verifier": fast_pkce.verifier},
        headers=headers,
    )
    assert full_endpoint_calls == []
    full = _without_shortcuts(
        client,
        "POST",
        "/token",
        data={**data, "code": full_code, "code_verifier": full_pkce.verifier},
        headers=headers,
    )
    assert fast.status_code == full.status_code == HTTPStatus.OK
    for name in ("Content-Type", "Cache-Control", "Pragma", "X-Content-Type-Options"):
        assert fast.headers[name] == full.headers[name], name
    fast_body, full_body = fast.json, full.json
    assert (
        set(fast_body)
        == set(full_body)
        == {"access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token"}
    )
    for name in ("token_type", "expires_in", "scope"):
        assert fast_body[name] == full_body[name], name
    keyring = app.extensions["idp"].keyring
    varying = {"jti", "iat", "exp", "gid", "at_hash"}
    for kind in ("access_token", "id_token"):
        fast_token = jwt.decode(fast_body[kind], keyring.keyset)
        full_token = jwt.decode(full_body[kind], keyring.keyset)
        assert fast_token.header == full_token.header
        assert fast_token.header["alg"] == alg
        assert {k: v for k, v in fast_token.claims.items() if k not in varying} == {
            k: v for k, v in full_token.claims.items() if k not in varying
        }, kind
    id_claims = jwt.decode(fast_body["id_token"], keyring.keyset).claims
    assert id_claims["nonce"] == "n-fast"
    assert id_claims["email"] == user.email
    assert id_claims["sub"] == user.subject
    # The at_hash binds the ID token to its access token (OIDC Core §3.1.3.8).
    digest = hashlib.sha256(fast_body["access_token"].encode()).digest()[:16]
    assert id_claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # The grant is real: its access token is live, its refresh token rotates.
    headers_rt = _basic("app", secret) if secret else {}
    data_rt = {"grant_type": "refresh_token", "refresh_token": fast_body["refresh_token"]}
    if by == "public":
        data_rt["client_id"] = "app"
    assert client.post("/token", data=data_rt, headers=headers_rt).status_code == HTTPStatus.OK
    userinfo = client.get(
        "/userinfo", headers={"Authorization": "Bearer " + fast_body["access_token"]}
    )
    assert userinfo.json["sub"] == user.subject


def test_a_code_exchanged_twice_ends_its_grant(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls
):
    _, secret, _ = user_tokens
    pkce = Pkce.new()
    code = _code(client, "portal", pkce)
    first = exchange(client, "portal", secret, code, pkce)
    assert first.status_code == HTTPStatus.OK
    assert full_endpoint_calls == ([] if _on_postgresql(app) else ["/token"])
    replay = exchange(client, "portal", secret, code, pkce)
    assert replay.status_code == HTTPStatus.BAD_REQUEST
    assert replay.json["error"] == "invalid_grant"
    assert full_endpoint_calls[-1:] == ["/token"]
    # RFC 6749 §4.1.2: what the code issued is revoked.
    data = {"token": first.json["access_token"]}
    assert client.post("/introspect", data=data, headers=_basic("portal", secret)).json == {
        "active": False
    }
    refresh = _refresh(client, secret, first.json["refresh_token"])
    assert refresh.json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "case",
    [
        "wrong verifier",
        "no verifier",
        "wrong redirect",
        "another client",
        "wrong secret",
        "unknown code",
        "extra parameter",
        "no PKCE at authorize",
    ],
)
def test_code_exchange_otherwise_takes_the_full_path_with_the_code_unspent(  # type: ignore[no-untyped-def]
    app, client, factory, user_tokens, full_endpoint_calls, consumed, monkeypatch, case
):
    _, secret, _ = user_tokens
    pkce = Pkce.new()
    code = _code(client, "portal", pkce)
    if case == "no PKCE at authorize":  # allowed to confidential clients when so configured
        tokens = app.extensions["idp"].tokens
        plain = replace(tokens.peek_code(code), code_challenge=None, code_challenge_method=None)
        code = "a-code-without-pkce"
        tokens.save_code(code, plain)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
    }
    headers = _basic("portal", secret)
    if case == "wrong verifier":
        data["code_verifier"] = Pkce.new().verifier
    elif case == "no verifier":
        del data["code_verifier"]
    elif case == "wrong redirect":
        data["redirect_uri"] = REDIRECT_URI + "/other"
    elif case == "another client":
        _, other = factory.client("other")
        headers = _basic("other", other)
    elif case == "wrong secret":
        headers = _basic("portal", secret + "x")
    elif case == "unknown code":
        data["code"] = "not-a-code"
    elif case == "extra parameter":
        data["scope"] = "openid"
    elif case == "no PKCE at authorize":
        del data["code_verifier"]
    response = client.post("/token", data=data, headers=headers)
    assert full_endpoint_calls == ["/token"]
    # Only the full path spent the code (or tried to), once.
    assert consumed in ([], [data["code"]])
    if case in ("extra parameter", "no PKCE at authorize"):
        assert response.status_code == HTTPStatus.OK
        return
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED)
    assert response.json["error"] in ("invalid_grant", "invalid_request", "invalid_client")


def test_a_code_taken_between_the_check_and_the_consumption_is_a_replay(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, monkeypatch
):
    """A concurrent exchange that takes the code after the shortcut checked
    it: the grant the shortcut made is withdrawn, and the full path sees the
    replay and ends the other exchange's grant."""
    if not _on_postgresql(app):
        pytest.skip("the code exchange shortcut runs on PostgreSQL")
    _, secret, _ = user_tokens
    tokens = app.extensions["idp"].tokens
    pkce = Pkce.new()
    code = _code(client, "portal", pkce)
    peek = tokens.peek_code
    taken: list[str | None] = []

    def peek_then_lose_the_race(value: str):  # type: ignore[no-untyped-def]
        found = peek(value)
        taken.append(tokens.consume_code(value)[1])  # the other exchange
        return found

    monkeypatch.setattr(tokens, "peek_code", peek_then_lose_the_race)
    with app.app_context():
        live_before = _live_grants()
    response = exchange(client, "portal", secret, code, pkce)
    assert full_endpoint_calls == ["/token"]
    assert response.json["error"] == "invalid_grant"
    store = app.extensions["idp"].store
    assert taken[0]
    assert store.redis.exists(store.key("deny", "grant", taken[0]))
    assert store.redis.get(store.key("code-used", secrets.digest(code))).decode() == taken[0]
    with app.app_context():
        assert _live_grants() == live_before  # the shortcut's grant was withdrawn


def _live_grants() -> int:
    query_ = select(func.count()).select_from(Grant).where(Grant.revoked_at.is_(None))
    return int(get_session().scalar(query_))


def test_a_failure_before_the_code_is_spent_leaves_it_to_the_full_path(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, monkeypatch
):
    if not _on_postgresql(app):
        pytest.skip("the code exchange shortcut runs on PostgreSQL")
    _, secret, _ = user_tokens
    tokens = app.extensions["idp"].tokens

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("the database went away")

    monkeypatch.setattr(tokens, "create_grant_in_one_statement", broken)
    pkce = Pkce.new()
    response = exchange(client, "portal", secret, _code(client, "portal", pkce), pkce)
    assert full_endpoint_calls == ["/token"]
    assert response.status_code == HTTPStatus.OK
    assert _verify(app, response.json["access_token"])[1]["sub"] == user_tokens[0].subject


@pytest.mark.parametrize(
    ("service", "step", "fault"),
    [
        # Whether the code was spent cannot be known: the full path might take
        # it for a replay.
        ("tokens", "claim_code", TimeoutError("no answer from Redis")),
        # The code is spent: the full path would take the request for a replay.
        ("server", "id_token", RuntimeError("signing failed")),
    ],
)
def test_a_failure_while_or_after_spending_the_code_is_a_server_error(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, monkeypatch, service, step, fault
):
    """Answered here, and the grant made for the code (no token was issued
    for it) is withdrawn."""
    if not _on_postgresql(app):
        pytest.skip("the code exchange shortcut runs on PostgreSQL")
    _, secret, _ = user_tokens

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise fault

    monkeypatch.setattr(getattr(app.extensions["idp"], service), step, broken)
    with app.app_context():
        live_before = _live_grants()
    pkce = Pkce.new()
    response = exchange(client, "portal", secret, _code(client, "portal", pkce), pkce)
    assert full_endpoint_calls == []
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json["error"] == "server_error"
    assert response.headers["Cache-Control"] == "no-store"
    with app.app_context():
        assert _live_grants() == live_before


def test_a_disabled_users_code_gets_no_tokens_and_no_grant(  # type: ignore[no-untyped-def]
    app, client, user_tokens, full_endpoint_calls, consumed
):
    user, secret, _ = user_tokens
    pkce = Pkce.new()
    code = _code(client, "portal", pkce)
    with app.app_context():
        grants_before = get_session().scalar(select(func.count()).select_from(Grant))
        get_session().get(User, user.id).is_active = False
        get_session().commit()
    response = exchange(client, "portal", secret, code, pkce)
    assert full_endpoint_calls == ["/token"]
    assert consumed == [code]  # by the full path only
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "There is no 'user' for this code.",
    }
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Grant)) == grants_before


def test_a_replay_before_the_grant_existed_revokes_it(  # type: ignore[no-untyped-def]
    app, client, user_tokens, monkeypatch
):
    """On the full path a replay can come between the code's consumption and
    its grant's row; it leaves the grant's deny-list entry, and the new grant
    is revoked at once. (The shortcut records the grant before it consumes.)"""
    _, secret, _ = user_tokens
    tokens = app.extensions["idp"].tokens
    consume = tokens.consume_code

    def consume_and_be_replayed(value: str):  # type: ignore[no-untyped-def]
        data, grant_id = consume(value)
        with app.app_context():
            tokens.revoke_grant(get_session(), grant_id)  # what the replay does
        return data, grant_id

    monkeypatch.setattr(tokens, "consume_code", consume_and_be_replayed)
    pkce = Pkce.new()
    data = {
        "grant_type": "authorization_code",
        "code": _code(client, "portal", pkce),
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
    }
    response = _without_shortcuts(
        client, "POST", "/token", data=data, headers=_basic("portal", secret)
    )
    assert response.status_code == HTTPStatus.OK
    data = {"token": response.json["access_token"]}
    assert client.post("/introspect", data=data, headers=_basic("portal", secret)).json == {
        "active": False
    }
    with app.app_context():
        grant = get_session().get(Grant, _verify_claims(app, response.json["access_token"])["gid"])
        assert grant.revoked_at is not None


def _verify_claims(app, token: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return dict(jwt.decode(token, app.extensions["idp"].keyring.keyset).claims)


@pytest.mark.parametrize("case", ["query string", "plain http", "invalid escape"])
def test_requests_the_full_endpoint_reads_otherwise_go_to_it(  # type: ignore[no-untyped-def]
    client, service, full_endpoint_calls, case
):
    """Parameters in a POST's query string, plain HTTP to a host that is not
    loopback, and bytes that are not UTF-8 are the full endpoint's to judge."""
    client_id, secret = service
    headers = _basic(client_id, secret)
    body = "grant_type=client_credentials&scope=profile"
    kwargs: dict[str, Any] = {}
    path = "/token"
    if case == "query string":
        path = "/token?scope=email"
    elif case == "plain http":
        kwargs["base_url"] = "http://idp.example.com"
    else:
        body = "grant_type=client_credentials&scope=%FF"
    response = client.post(
        path,
        data=body,
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        **kwargs,
    )
    assert full_endpoint_calls == ["/token"]
    if case == "plain http":
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response.json["error"] == "insecure_transport"
    elif case == "query string":  # the query string's scope wins there
        assert response.json["scope"] == "email"
    else:
        assert response.status_code == HTTPStatus.BAD_REQUEST


def test_transport_answers_are_remembered_per_host_within_a_bound(  # type: ignore[no-untyped-def]
    client, service, shortcut: Shortcuts, full_endpoint_calls
):
    """Each (scheme, host) is judged once; plain HTTP to a host that is not
    loopback still goes to the full endpoint every time, and hosts made up by
    clients do not grow the worker's memory past its bound."""
    client_id, secret = service
    body = "grant_type=client_credentials&scope=profile"
    headers = {**_basic(client_id, secret), "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/token", data=body, headers=headers).json["token_type"] == "Bearer"
    assert shortcut._secure_transports == {("http", "localhost"): True}
    for host in ["idp.example.com"] * 3 + [f"h{n}.example.com" for n in range(100)]:
        response = client.post("/token", data=body, headers=headers, base_url=f"http://{host}")
        assert response.json["error"] == "insecure_transport"
    assert len(full_endpoint_calls) == 103
    assert len(shortcut._secure_transports) == SECURE_TRANSPORTS_REMEMBERED
    assert shortcut._secure_transports["http", "idp.example.com"] is False
    # A host judged after the memory filled is judged again each time.
    again = client.post("/token", data=body, headers=headers, base_url="http://h99.example.com")
    assert again.json["error"] == "insecure_transport"
