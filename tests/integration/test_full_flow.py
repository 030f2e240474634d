"""The whole code + PKCE flow against the running server, driven by an
independent client (Authlib's requests client) the way a relying party does."""

from __future__ import annotations

from http import HTTPStatus

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwk
from joserfc import jwt
from joserfc.jwt import JWTClaimsRegistry

from tests.factories import REDIRECT_URI
from tests.factories import Factory
from tests.flows import http_login


def test_code_flow_with_pkce_from_discovery_to_introspection(live_server):
    factory = Factory(live_server)
    _, secret = factory.client("portal")
    user = factory.user()
    base = live_server.base_url

    # Discovery and keys, as a relying party learns them.
    metadata = requests.get(base + "/.well-known/openid-configuration", timeout=5).json()
    assert metadata["issuer"] == base
    keys = jwk.KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=5).json())

    rp = OAuth2Session(
        "portal",
        secret,
        scope="openid profile email organization offline_access",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = rp.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )

    # The browser: authorize, log in, follow the redirect back to the client.
    browser = requests.Session()
    login_page = browser.get(url, timeout=5)
    assert login_page.status_code == HTTPStatus.OK
    answer = http_login(browser, login_page, user.email, allow_redirects=False)
    assert answer.status_code == HTTPStatus.FOUND
    callback = answer.headers["Location"]
    assert callback.startswith(REDIRECT_URI)

    # The client: code → tokens. RFC 9207: the response names its issuer.
    token = rp.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )
    assert "iss=" + requests.utils.quote(base, safe="") in callback

    # The ID token: signature against the JWKS, then its claims.
    id_token = jwt.decode(token["id_token"], keys)
    JWTClaimsRegistry(
        iss={"essential": True, "value": base},
        aud={"essential": True, "value": "portal"},
        sub={"essential": True, "value": user.subject},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
        iat={"essential": True},
        auth_time={"essential": True},
        sid={"essential": True},
        at_hash={"essential": True},
    ).validate(id_token.claims)

    # UserInfo with the access token.
    info = rp.get(metadata["userinfo_endpoint"], timeout=5).json()
    assert info["sub"] == user.subject
    assert info["email"] == user.email
    assert info["organization"] == "Testorganisation A/S"

    # Refresh: a new pair; the old refresh token is spent.
    old_refresh = token["refresh_token"]
    refreshed = rp.refresh_token(metadata["token_endpoint"], refresh_token=old_refresh)
    assert refreshed["refresh_token"] != old_refresh
    jwt.decode(refreshed["access_token"], keys)

    # Revoke the access token; introspection then says inactive.
    rp.revoke_token(
        metadata["revocation_endpoint"], refreshed["access_token"], token_type_hint="access_token"
    )
    introspected = rp.introspect_token(
        metadata["introspection_endpoint"], refreshed["access_token"]
    )
    assert introspected.json() == {"active": False}
