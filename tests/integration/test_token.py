"""The token endpoint: code exchange, refresh rotation, client credentials,
client authentication, and the tokens' contents."""

from __future__ import annotations

import base64
import hashlib
from http import HTTPStatus

import pytest
from joserfc import jwt

from idp import clock
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import exchange
from tests.flows import login_for_code


@pytest.fixture
def confidential(factory):  # type: ignore[no-untyped-def]
    return factory.client("portal")


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    return factory.user(phone_number="+4512345678", address={"locality": "Aarhus"})


def _code(client, client_id, user, pkce=None, **extra):  # type: ignore[no-untyped-def]
    pkce = pkce or Pkce.new()
    return login_for_code(client, client_id, user.email, pkce, **extra)["code"], pkce


def _claims(app, token: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    decoded = jwt.decode(token, app.extensions["idp"].keyring.keyset)
    return decoded.header, decoded.claims


def _introspect(client, token, client_id="portal", secret=None):  # type: ignore[no-untyped-def]
    return client.post("/introspect", data={"token": token}, auth=(client_id, secret)).json


def test_code_exchange_returns_tokens_and_an_id_token_with_all_claims(
    app, client, confidential, user
):
    _rp, secret = confidential
    code, pkce = _code(client, "portal", user)
    response = exchange(client, "portal", secret, code, pkce)
    assert response.status_code == HTTPStatus.OK
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "openid profile email offline_access"
    header, claims = _claims(app, body["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in app.extensions["idp"].keyring.jwks["keys"]}
    assert {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "at_hash",
        "sid",
        "azp",
    } <= set(claims)
    assert claims["iss"] == "http://localhost"
    assert claims["sub"] == user.subject
    assert claims["aud"] == ["portal"]
    assert claims["azp"] == "portal"
    assert claims["nonce"] == "nonce-456"
    assert claims["amr"] == ["pwd"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert claims["email"] == user.email


def test_access_token_is_an_rfc9068_jwt(app, client, confidential, user):
    _, secret = confidential
    code, pkce = _code(client, "portal", user)
    body = exchange(client, "portal", secret, code, pkce).json
    header, claims = _claims(app, body["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == "portal"
    assert claims["sub"] == user.subject
    assert claims["exp"] - claims["iat"] == 300
    assert len(claims["jti"]) >= 32
    assert claims["scope"] == "openid profile email offline_access"


def test_refresh_token_is_opaque(client, confidential, user):
    _, secret = confidential
    code, pkce = _code(client, "portal", user)
    refresh = exchange(client, "portal", secret, code, pkce).json["refresh_token"]
    assert refresh.count(".") == 0
    assert len(refresh) >= 43


def test_es256_client_gets_es256_tokens(app, client, factory, user):
    _, secret = factory.client("es-client", signing_alg="ES256")
    code, pkce = _code(client, "es-client", user)
    body = exchange(client, "es-client", secret, code, pkce).json
    assert _claims(app, body["id_token"])[0]["alg"] == "ES256"
    assert _claims(app, body["access_token"])[0]["alg"] == "ES256"


def test_client_secret_post_is_accepted(client, confidential, user):
    _, secret = confidential
    code, pkce = _code(client, "portal", user)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
            "client_id": "portal",
            "client_secret": secret,
        },
    )
    assert response.status_code == HTTPStatus.OK


def test_public_client_authenticates_with_pkce_alone(client, factory, user):
    factory.client("spa", is_public=True)
    code, pkce = _code(client, "spa", user)
    response = exchange(client, "spa", None, code, pkce)
    assert response.status_code == HTTPStatus.OK
    assert "id_token" in response.json


def test_wrong_client_secret_is_invalid_client(client, confidential, user):
    code, pkce = _code(client, "portal", user)
    response = exchange(client, "portal", "wrong-secret", code, pkce)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json["error"] == "invalid_client"


def test_confidential_client_without_secret_is_invalid_client(client, confidential, user):
    code, pkce = _code(client, "portal", user)
    response = exchange(client, "portal", None, code, pkce)
    assert response.json["error"] == "invalid_client"


def test_missing_code_verifier_is_refused(client, confidential, user):
    _, secret = confidential
    code, _ = _code(client, "portal", user)
    response = exchange(client, "portal", secret, code, None)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json["error"] == "invalid_request"


def test_wrong_code_verifier_is_invalid_grant(client, confidential, user):
    _, secret = confidential
    code, _ = _code(client, "portal", user)
    response = exchange(client, "portal", secret, code, Pkce.new())
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json["error"] == "invalid_grant"


def test_wrong_redirect_uri_is_invalid_grant(client, confidential, user):
    _, secret = confidential
    code, pkce = _code(client, "portal", user)
    response = exchange(
        client, "portal", secret, code, pkce, redirect_uri="http://localhost:8000/other"
    )
    assert response.json["error"] == "invalid_grant"


def test_reused_code_is_invalid_grant_and_revokes_its_tokens(client, confidential, user):
    _, secret = confidential
    code, pkce = _code(client, "portal", user)
    first = exchange(client, "portal", secret, code, pkce).json
    second = exchange(client, "portal", secret, code, pkce)
    assert second.status_code == HTTPStatus.BAD_REQUEST
    assert second.json["error"] == "invalid_grant"
    assert _introspect(client, first["access_token"], secret=secret) == {"active": False}
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("portal", secret),
    )
    assert refreshed.json["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(client, confidential, user, monkeypatch):
    _, secret = confidential
    code, pkce = _code(client, "portal", user)
    later = clock.now() + 61
    monkeypatch.setattr(clock, "now", lambda: later)
    response = exchange(client, "portal", secret, code, pkce)
    assert response.json["error"] == "invalid_grant"


def test_code_of_another_client_is_invalid_grant(client, factory, confidential, user):
    _, other_secret = factory.client("other")
    code, pkce = _code(client, "portal", user)
    response = exchange(client, "other", other_secret, code, pkce)
    assert response.json["error"] == "invalid_grant"


def test_unknown_code_is_invalid_grant(client, confidential):
    _, secret = confidential
    response = exchange(client, "portal", secret, "no-such-code", Pkce.new())
    assert response.json["error"] == "invalid_grant"


def test_unsupported_grant_type(client, confidential):
    _, secret = confidential
    response = client.post("/token", data={"grant_type": "password"}, auth=("portal", secret))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json["error"] == "unsupported_grant_type"


def test_grant_type_not_registered_for_the_client_is_unauthorized_client(client, factory):
    _, secret = factory.client("no-cc", grant_types=["authorization_code"])
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("no-cc", secret)
    )
    assert response.json["error"] == "unauthorized_client"


class TestRefresh:
    def _tokens(self, client, secret, user):  # type: ignore[no-untyped-def]
        code, pkce = _code(client, "portal", user)
        return exchange(client, "portal", secret, code, pkce).json

    def _refresh(self, client, secret, token, **extra):  # type: ignore[no-untyped-def]
        data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
        return client.post("/token", data=data, auth=("portal", secret))

    def test_refresh_rotates_the_refresh_token(self, client, confidential, user):
        _, secret = confidential
        first = self._tokens(client, secret, user)
        response = self._refresh(client, secret, first["refresh_token"])
        assert response.status_code == HTTPStatus.OK
        assert response.json["refresh_token"] != first["refresh_token"]
        assert response.json["access_token"] != first["access_token"]
        assert response.json["scope"] == "openid profile email offline_access"

    def test_reuse_of_a_rotated_refresh_token_revokes_the_grant(self, client, confidential, user):
        _, secret = confidential
        first = self._tokens(client, secret, user)
        second = self._refresh(client, secret, first["refresh_token"]).json
        replay = self._refresh(client, secret, first["refresh_token"])
        assert replay.status_code == HTTPStatus.BAD_REQUEST
        assert replay.json["error"] == "invalid_grant"
        assert (
            self._refresh(client, secret, second["refresh_token"]).json["error"] == "invalid_grant"
        )
        assert _introspect(client, second["access_token"], secret=secret) == {"active": False}

    def test_refresh_can_narrow_but_not_widen_the_scope(self, client, confidential, user):
        _, secret = confidential
        first = self._tokens(client, secret, user)
        wider = self._refresh(client, secret, first["refresh_token"], scope="openid phone")
        assert wider.json["error"] == "invalid_scope"
        narrower = self._refresh(client, secret, first["refresh_token"], scope="openid")
        assert narrower.json["scope"] == "openid"

    def test_refresh_token_of_another_client_is_invalid_grant(
        self, client, factory, confidential, user
    ):
        _, secret = confidential
        _, other_secret = factory.client("other")
        first = self._tokens(client, secret, user)
        response = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=("other", other_secret),
        )
        assert response.json["error"] == "invalid_grant"

    def test_expired_grant_cannot_be_refreshed(self, client, confidential, user, monkeypatch):
        _, secret = confidential
        first = self._tokens(client, secret, user)
        later = clock.now() + 31 * 24 * 3600
        monkeypatch.setattr(clock, "now", lambda: later)
        assert (
            self._refresh(client, secret, first["refresh_token"]).json["error"] == "invalid_grant"
        )


def test_client_credentials_issues_an_access_token_for_the_client(app, client, confidential):
    _, secret = confidential
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "profile"},
        auth=("portal", secret),
    )
    assert response.status_code == HTTPStatus.OK
    body = response.json
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    _, claims = _claims(app, body["access_token"])
    assert claims["sub"] == "portal"
    assert claims["client_id"] == "portal"


def test_public_client_cannot_use_client_credentials(client, factory):
    factory.client("spa", is_public=True)
    response = client.post("/token", data={"grant_type": "client_credentials", "client_id": "spa"})
    assert response.json["error"] in ("invalid_client", "unauthorized_client")


def test_claims_parameter_requests_claims_within_the_clients_scopes(app, client, factory, user):
    _, secret = factory.client("narrow", scopes=["openid", "organization"])
    claims_request = '{"id_token": {"job_title": {"essential": true}}, "userinfo": {"email": null}}'
    code, pkce = _code(client, "narrow", user, claims=claims_request, scope="openid")
    body = exchange(client, "narrow", secret, code, pkce).json
    assert body["scope"] == "openid organization"
    id_claims = _claims(app, body["id_token"])[1]
    assert id_claims["job_title"] == "HR assistent"
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).json
    assert info["organization"] == "Testorganisation A/S"
    # e-mail is outside the client's registered scopes: never released.
    assert "email" not in id_claims
    assert "email" not in info


def test_refresh_token_only_with_offline_access(client, confidential, user):
    _, secret = confidential
    code, pkce = _code(client, "portal", user, scope="openid profile")
    body = exchange(client, "portal", secret, code, pkce).json
    assert "refresh_token" not in body
    assert body["scope"] == "openid profile"


def test_malformed_claims_parameter_is_invalid_request(client, confidential, user):
    from tests.flows import authorize
    from tests.flows import authorize_params
    from tests.flows import query

    response = authorize(client, authorize_params("portal", Pkce.new(), claims="{not json"))
    assert query(response.location)["error"] == "invalid_request"
