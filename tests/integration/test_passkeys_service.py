"""WebAuthn ceremonies against a software authenticator (soft-webauthn,
extended to verify the user), through the service the views use."""

from __future__ import annotations

import json

import pytest

from idp.db import get_session
from idp.models import User
from idp.services.passkeys import CeremonyError
from idp.services.passkeys import ClonedAuthenticatorError
from tests.authenticator import Authenticator

ORIGIN = "http://localhost"


@pytest.fixture
def ctx(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        yield app.extensions["idp"].passkeys, get_session()


@pytest.fixture
def kim(ctx, factory):  # type: ignore[no-untyped-def]
    return ctx[1].get(User, factory.user("kim@example.com").id)


def register(passkeys, session, user, device, origin=ORIGIN, name="Min nøgle"):  # type: ignore[no-untyped-def]
    options = passkeys.registration_options(session, user, "reg")
    return passkeys.register(session, user, "reg", device.create_json(options, origin), name)


def sign_in(passkeys, session, device, user=None, origin=ORIGIN, **kw):  # type: ignore[no-untyped-def]
    options = passkeys.authentication_options(session, "auth", user)
    return passkeys.authenticate(session, "auth", device.get_json(options, origin, **kw), user)


def test_registration_stores_the_key_with_its_details(ctx, kim):
    passkeys, session = ctx
    options = json.loads(passkeys.registration_options(session, kim, "reg"))
    assert options["rp"] == {"id": "localhost", "name": "Login"}
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["user"]["name"] == "kim@example.com"
    assert options["user"]["id"] == session.get(User, kim.id).webauthn_handle
    device = Authenticator()
    credential = passkeys.register(
        session, kim, "reg", device.create_json(json.dumps(options), ORIGIN), " Min nøgle "
    )
    assert credential.name == "Min nøgle"
    assert credential.transports == ["internal"]
    assert credential.aaguid == "00000000-0000-0000-0000-000000000000"
    assert credential.user_verified
    assert not credential.backup_eligible
    assert credential.sign_count == 0
    assert credential.created_at is not None


def test_existing_keys_are_excluded_from_new_registrations(ctx, kim):
    passkeys, session = ctx
    first = register(passkeys, session, kim, Authenticator())
    options = json.loads(passkeys.registration_options(session, kim, "reg"))
    assert [c["id"] for c in options["excludeCredentials"]] == [first.credential_id]


def test_passwordless_login_names_the_user_and_counts_as_two_factors(ctx, kim):
    passkeys, session = ctx
    device = Authenticator()
    register(passkeys, session, kim, device)
    options = json.loads(passkeys.authentication_options(session, "auth"))
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required"
    verified = passkeys.authenticate(
        session, "auth", device.get_json(json.dumps(options), ORIGIN), None
    )
    assert verified.user.id == kim.id
    assert verified.user_verified
    assert verified.amr == "hwk"
    assert verified.credential.sign_count == 1
    assert verified.credential.last_used_at is not None


def test_a_syncable_passkey_is_a_software_key(ctx, kim):
    passkeys, session = ctx
    device = Authenticator(syncable=True)
    register(passkeys, session, kim, device)
    assert sign_in(passkeys, session, device).amr == "swk"


def test_wrong_origin_is_refused(ctx, kim):
    passkeys, session = ctx
    device = Authenticator()
    with pytest.raises(CeremonyError):
        register(passkeys, session, kim, device, origin="https://evil.example")
    register(passkeys, session, kim, device)
    with pytest.raises(CeremonyError):
        sign_in(passkeys, session, device, origin="https://evil.example")


def test_wrong_rp_id_is_refused(ctx, kim):
    passkeys, session = ctx
    device = Authenticator()
    register(passkeys, session, kim, device)
    with pytest.raises(CeremonyError):
        sign_in(passkeys, session, device, rp_id="evil.example")


def test_a_challenge_works_once(ctx, kim):
    passkeys, session = ctx
    device = Authenticator()
    register(passkeys, session, kim, device)
    options = passkeys.authentication_options(session, "auth")
    answer = device.get_json(options, ORIGIN)
    passkeys.authenticate(session, "auth", answer)
    with pytest.raises(CeremonyError, match="challenge"):
        passkeys.authenticate(session, "auth", answer)


def test_a_sign_count_that_goes_back_is_a_cloned_key(ctx, kim):
    passkeys, session = ctx
    device = Authenticator()
    register(passkeys, session, kim, device)
    sign_in(passkeys, session, device)
    sign_in(passkeys, session, device)
    device.sign_count = 0  # the clone signs with 1 again
    with pytest.raises(ClonedAuthenticatorError) as cloned:
        sign_in(passkeys, session, device)
    assert cloned.value.credential.user_id == kim.id


def test_without_user_verification_a_key_can_be_a_second_factor_only(ctx, kim):
    passkeys, session = ctx
    with pytest.raises(CeremonyError):
        register(passkeys, session, kim, Authenticator(verifies_user=False))
    device = Authenticator()
    register(passkeys, session, kim, device)
    device.verifies_user = False  # a touch, no PIN or biometrics
    with pytest.raises(CeremonyError):
        sign_in(passkeys, session, device)
    verified = sign_in(passkeys, session, device, user=kim)
    assert not verified.user_verified


def test_second_factor_options_list_only_the_users_keys(ctx, kim, factory, app):
    passkeys, session = ctx
    device = Authenticator()
    own = register(passkeys, session, kim, device)
    other_user = session.get(User, factory.user("ann@example.com").id)
    register(passkeys, session, other_user, Authenticator())
    options = json.loads(passkeys.authentication_options(session, "auth", kim))
    assert [c["id"] for c in options["allowCredentials"]] == [own.credential_id]
    assert options["userVerification"] == "preferred"


def test_another_users_key_is_no_second_factor(ctx, kim, factory):
    passkeys, session = ctx
    other_user = session.get(User, factory.user("ann@example.com").id)
    device = Authenticator()
    register(passkeys, session, other_user, device)
    with pytest.raises(CeremonyError, match="another account"):
        sign_in(passkeys, session, device, user=kim)


def test_unknown_keys_and_garbage_are_refused(ctx, kim):
    passkeys, session = ctx
    device = Authenticator()
    device.cred_init("localhost", b"x" * 32)
    with pytest.raises(CeremonyError, match="unknown key"):
        sign_in(passkeys, session, device)
    passkeys.authentication_options(session, "auth")
    with pytest.raises(CeremonyError):
        passkeys.authenticate(session, "auth", "{not json")


def test_a_key_cannot_be_registered_twice(ctx, kim, monkeypatch):
    passkeys, session = ctx
    device = Authenticator()
    register(passkeys, session, kim, device)
    # The same key registers again (a browser that ignored excludeCredentials).
    monkeypatch.setattr(device, "cred_init", lambda rp_id, handle: None)
    with pytest.raises(CeremonyError, match="already registered"):
        register(passkeys, session, kim, device)
    assert len(passkeys.credentials(session, kim.id)) == 1
