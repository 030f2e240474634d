"""Verified access tokens are remembered per process; what can change about a
token (its expiry, its revocation, the key that signed it) is still checked
on every use."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from joserfc import jws

from idp import clock
from idp.services import tokens as tokens_module
from tests.factories import Pkce
from tests.flows import exchange
from tests.flows import login_for_code


@pytest.fixture
def issued(client, factory):  # type: ignore[no-untyped-def]
    _, secret = factory.client("portal")
    user = factory.user()
    pkce = Pkce.new()
    code = login_for_code(client, "portal", user.email, pkce)["code"]
    return secret, exchange(client, "portal", secret, code, pkce).json


def _userinfo(client, token: str):  # type: ignore[no-untyped-def]
    return client.get("/userinfo", headers={"Authorization": "Bearer " + token})


def _travel(monkeypatch, seconds: int) -> None:  # type: ignore[no-untyped-def]
    target = clock.now() + seconds
    monkeypatch.setattr(clock, "now", lambda: target)


def test_a_remembered_token_is_refused_once_revoked(client, issued):  # type: ignore[no-untyped-def]
    secret, body = issued
    token = body["access_token"]
    assert _userinfo(client, token).status_code == HTTPStatus.OK
    client.post("/revoke", data={"token": token}, auth=("portal", secret))
    assert _userinfo(client, token).status_code == HTTPStatus.UNAUTHORIZED


def test_a_remembered_token_is_refused_once_expired(client, issued, monkeypatch):  # type: ignore[no-untyped-def]
    _, body = issued
    token = body["access_token"]
    assert _userinfo(client, token).status_code == HTTPStatus.OK
    _travel(monkeypatch, body["expires_in"] + 1)
    response = _userinfo(client, token)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "expired" in response.json["error_description"]


def test_a_compromised_key_stops_remembered_tokens_at_once(app, client, issued, monkeypatch):  # type: ignore[no-untyped-def]
    _, body = issued
    token = body["access_token"]
    assert _userinfo(client, token).status_code == HTTPStatus.OK
    keystore = app.extensions["idp"].keystore
    kid = str(jws.extract_compact(token.encode()).protected["kid"])
    keystore.rotate(("RS256",), activation_delay=0)
    keystore.retire(kid, compromised=True)
    _travel(monkeypatch, 3)  # past the key ring's reload check
    assert _userinfo(client, token).status_code == HTTPStatus.UNAUTHORIZED


def test_the_memory_is_bounded(app, client, factory, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tokens_module, "VERIFIED_TOKENS_REMEMBERED", 3)
    _, secret = factory.client("svc")
    tokens = app.extensions["idp"].tokens
    for _ in range(7):
        response = client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret)
        )
        tokens.verify_access_token(response.json["access_token"])
        assert len(tokens._verified[1]) <= 3


def test_a_check_begun_with_an_older_key_set_is_not_remembered_for_the_new_one(  # type: ignore[no-untyped-def]
    app, client, issued, monkeypatch
):
    """A verification in flight while a key is withdrawn must not leave its
    token remembered under the key set without that key."""
    _, body = issued
    token = body["access_token"]
    tokens = app.extensions["idp"].tokens
    keyring = app.extensions["idp"].keyring
    old_keyset = keyring.keyset
    decode = tokens_module.jwt.decode

    def decode_while_the_ring_changes(*args, **kwargs):  # type: ignore[no-untyped-def]
        # Another thread sees a new key set and starts its memory meanwhile.
        tokens._verified = (object(), {})
        return decode(*args, **kwargs)

    monkeypatch.setattr(tokens_module.jwt, "decode", decode_while_the_ring_changes)
    tokens.verify_access_token(token)
    current_set, current_memory = tokens._verified
    assert token not in current_memory
    assert current_set is not old_keyset
