"""Key rotation: a new key is published before it signs; tokens signed by a
retired key keep verifying until they expire."""

from __future__ import annotations

import pytest
from joserfc import jwk
from joserfc import jws
from joserfc import jwt

from idp import clock
from tests.factories import Pkce
from tests.flows import exchange
from tests.flows import login_for_code


@pytest.fixture
def secret(factory):  # type: ignore[no-untyped-def]
    return factory.client("portal")[1]


def _tokens(client, secret, user):  # type: ignore[no-untyped-def]
    pkce = Pkce.new()
    code = login_for_code(client, "portal", user.email, pkce)["code"]
    return exchange(client, "portal", secret, code, pkce).json


def _kid(token: str) -> str:
    return str(jws.extract_compact(token.encode()).protected["kid"])


def _verify_with_published_jwks(client, token: str) -> None:  # type: ignore[no-untyped-def]
    keyset = jwk.KeySet.import_key_set(client.get("/jwks.json").json)
    jwt.decode(token, keyset)


def _travel(monkeypatch, seconds: int) -> None:  # type: ignore[no-untyped-def]
    target = clock.now() + seconds
    monkeypatch.setattr(clock, "now", lambda: target)


def test_rotation_publishes_first_then_signs_and_keeps_old_tokens_verifiable(
    app, client, factory, secret, monkeypatch
):
    user = factory.user()
    keystore = app.extensions["idp"].keystore
    before = _tokens(client, secret, user)
    old_kid = _kid(before["id_token"])

    (new_key,) = keystore.rotate(("RS256",), activation_delay=900)
    _travel(monkeypatch, 3)  # past the key ring's reload check
    published = {k["kid"] for k in client.get("/jwks.json").json["keys"]}
    assert {old_kid, new_key.kid} <= published
    during = _tokens(client, secret, user)
    assert _kid(during["id_token"]) == old_kid  # published, not yet signing

    _travel(monkeypatch, 900)
    after = _tokens(client, secret, user)
    assert _kid(after["id_token"]) == new_key.kid
    assert _kid(after["access_token"]) == new_key.kid
    _verify_with_published_jwks(client, during["id_token"])
    _verify_with_published_jwks(client, after["id_token"])

    _travel(monkeypatch, 601)  # longer than any token signed by the old key lives
    published = {k["kid"] for k in client.get("/jwks.json").json["keys"]}
    assert old_kid not in published
    assert new_key.kid in published


def test_immediate_rotation_keeps_live_tokens_working(app, client, factory, secret, monkeypatch):
    user = factory.user()
    before = _tokens(client, secret, user)
    app.extensions["idp"].keystore.rotate(("RS256", "ES256"), activation_delay=0)
    _travel(monkeypatch, 3)
    after = _tokens(client, secret, user)
    assert _kid(after["access_token"]) != _kid(before["access_token"])
    userinfo = client.get(
        "/userinfo", headers={"Authorization": "Bearer " + before["access_token"]}
    )
    assert userinfo.status_code == 200
    _verify_with_published_jwks(client, before["id_token"])
