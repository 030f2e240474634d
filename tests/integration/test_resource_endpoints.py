"""UserInfo, revocation (RFC 7009), introspection (RFC 7662)."""

from __future__ import annotations

import datetime as dt
from http import HTTPStatus

import pytest

from idp import clock
from tests.factories import Pkce
from tests.flows import exchange
from tests.flows import login_for_code


@pytest.fixture
def secret(factory):  # type: ignore[no-untyped-def]
    return factory.client("portal")[1]


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    return factory.user(phone_number="+4512345678", address={"locality": "Aarhus", "country": "DK"})


def _tokens(client, secret, user, scope="openid profile email offline_access"):  # type: ignore[no-untyped-def]
    pkce = Pkce.new()
    code = login_for_code(client, "portal", user.email, pkce, scope=scope)["code"]
    return exchange(client, "portal", secret, code, pkce).json


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


class TestUserInfo:
    def test_get_with_header_returns_claims_of_the_scopes(self, client, secret, user):
        tokens = _tokens(client, secret, user, scope="openid email organization")
        response = client.get("/userinfo", headers=_bearer(tokens["access_token"]))
        assert response.status_code == HTTPStatus.OK
        assert response.json == {
            "sub": user.subject,
            "email": user.email,
            "email_verified": True,
            "organization": "Testorganisation A/S",
            "job_title": "HR assistent",
        }

    def test_post_with_form_body(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        response = client.post("/userinfo", data={"access_token": tokens["access_token"]})
        assert response.status_code == HTTPStatus.OK
        assert response.json["sub"] == user.subject

    def test_phone_and_address_scopes(self, client, secret, user):
        tokens = _tokens(client, secret, user, scope="openid phone address")
        body = client.get("/userinfo", headers=_bearer(tokens["access_token"])).json
        assert body["phone_number"] == "+4512345678"
        assert body["phone_number_verified"] is False
        assert body["address"] == {"locality": "Aarhus", "country": "DK"}

    def test_token_in_query_string_is_not_accepted(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        response = client.get("/userinfo?access_token=" + tokens["access_token"])
        assert response.status_code == HTTPStatus.UNAUTHORIZED

    def test_missing_token_is_401_with_challenge(self, client):
        response = client.get("/userinfo")
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_garbage_token_is_invalid_token(self, client):
        response = client.get("/userinfo", headers=_bearer("garbage"))
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.json["error"] == "invalid_token"

    def test_expired_token_is_invalid_token(self, client, secret, user, monkeypatch):
        tokens = _tokens(client, secret, user)
        later = clock.now() + 301
        monkeypatch.setattr(clock, "now", lambda: later)
        response = client.get("/userinfo", headers=_bearer(tokens["access_token"]))
        assert response.json["error"] == "invalid_token"

    def test_client_credentials_token_is_insufficient_scope(self, client, secret):
        token = client.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "profile"},
            auth=("portal", secret),
        ).json["access_token"]
        response = client.get("/userinfo", headers=_bearer(token))
        assert response.status_code == HTTPStatus.FORBIDDEN
        assert response.json["error"] == "insufficient_scope"

    def test_disabled_user_gets_no_claims(self, client, app, secret, user):
        from idp.services.accounts import UserProfile

        tokens = _tokens(client, secret, user)
        app.extensions["idp"].accounts.update(user.email, UserProfile(is_active=False))
        response = client.get("/userinfo", headers=_bearer(tokens["access_token"]))
        assert response.json["error"] == "invalid_token"

    def test_a_token_of_an_expired_grant_gets_no_claims(self, client, app, secret, user):
        """An access token can outlive its grant by minutes (one refreshed
        just before the grant's absolute end): the grant's end stops it."""
        from sqlalchemy import update

        from idp.models import Grant

        tokens = _tokens(client, secret, user)
        with app.extensions["idp.engine"].begin() as connection:
            connection.execute(
                update(Grant).values(expires_at=clock.utcnow() - dt.timedelta(seconds=1))
            )
        response = client.get("/userinfo", headers=_bearer(tokens["access_token"]))
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.json["error"] == "invalid_token"


class TestRevocation:
    def test_revoked_access_token_is_inactive_and_refused_by_userinfo(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        response = client.post(
            "/revoke",
            data={"token": tokens["access_token"], "token_type_hint": "access_token"},
            auth=("portal", secret),
        )
        assert response.status_code == HTTPStatus.OK
        introspected = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", secret)
        )
        assert introspected.json == {"active": False}
        assert client.get("/userinfo", headers=_bearer(tokens["access_token"])).status_code == 401

    def test_revoked_refresh_token_ends_the_grant(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        client.post("/revoke", data={"token": tokens["refresh_token"]}, auth=("portal", secret))
        refreshed = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=("portal", secret),
        )
        assert refreshed.json["error"] == "invalid_grant"
        introspected = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", secret)
        )
        assert introspected.json == {"active": False}

    def test_unknown_token_revocation_is_200(self, client, secret):
        response = client.post("/revoke", data={"token": "unknown"}, auth=("portal", secret))
        assert response.status_code == HTTPStatus.OK

    def test_another_clients_token_is_not_revoked(self, client, factory, secret, user):
        _, other_secret = factory.client("other")
        tokens = _tokens(client, secret, user)
        response = client.post(
            "/revoke", data={"token": tokens["access_token"]}, auth=("other", other_secret)
        )
        assert response.status_code == HTTPStatus.OK
        introspected = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", secret)
        )
        assert introspected.json["active"] is True

    def test_revocation_requires_client_authentication(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        response = client.post(
            "/revoke", data={"token": tokens["access_token"]}, auth=("portal", "wrong")
        )
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        assert response.json["error"] == "invalid_client"


class TestIntrospection:
    def test_active_access_token(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        body = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", secret)
        ).json
        assert body["active"] is True
        assert body["client_id"] == "portal"
        assert body["sub"] == user.subject
        assert body["scope"] == "openid profile email offline_access"
        assert body["token_type"] == "Bearer"

    def test_active_refresh_token(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        body = client.post(
            "/introspect", data={"token": tokens["refresh_token"]}, auth=("portal", secret)
        ).json
        assert body["active"] is True
        assert body["client_id"] == "portal"

    def test_used_refresh_token_is_inactive(self, client, secret, user):
        tokens = _tokens(client, secret, user)
        client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=("portal", secret),
        )
        body = client.post(
            "/introspect", data={"token": tokens["refresh_token"]}, auth=("portal", secret)
        ).json
        assert body == {"active": False}

    def test_expired_access_token_is_inactive(self, client, secret, user, monkeypatch):
        tokens = _tokens(client, secret, user)
        later = clock.now() + 301
        monkeypatch.setattr(clock, "now", lambda: later)
        body = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", secret)
        ).json
        assert body == {"active": False}

    def test_another_clients_token_is_inactive(self, client, factory, secret, user):
        _, other_secret = factory.client("other")
        tokens = _tokens(client, secret, user)
        body = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("other", other_secret)
        ).json
        assert body == {"active": False}

    def test_public_client_cannot_introspect(self, client, factory, secret, user):
        factory.client("spa", is_public=True)
        tokens = _tokens(client, secret, user)
        response = client.post(
            "/introspect", data={"token": tokens["access_token"], "client_id": "spa"}
        )
        assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED)
        assert response.json["error"] == "invalid_client"
