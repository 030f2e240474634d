from __future__ import annotations

import pytest

from idp import clock
from idp.services.keys import KeyManagementError
from idp.services.keys import KeyRing
from idp.services.keys import KeyStore


@pytest.fixture
def store(tmp_path):  # type: ignore[no-untyped-def]
    store = KeyStore(tmp_path, max_token_seconds=600)
    store.generate()
    return store


def _travel(monkeypatch, seconds):  # type: ignore[no-untyped-def]
    target = clock.now() + seconds
    monkeypatch.setattr(clock, "now", lambda: target)


def test_generate_makes_one_key_per_algorithm_once(store):
    assert store.generate() == []
    assert sorted(i.alg for i in store.infos()) == ["ES256", "RS256"]


def test_rotated_key_is_published_before_it_signs(store, monkeypatch):
    ring = KeyRing(store)
    old = ring.signing_key("RS256").kid
    (new,) = store.rotate(("RS256",), activation_delay=900)
    _travel(monkeypatch, 3)
    assert new.kid in {k["kid"] for k in ring.jwks["keys"]}
    assert ring.signing_key("RS256").kid == old
    _travel(monkeypatch, 900)
    assert ring.signing_key("RS256").kid == new.kid
    assert old in {k["kid"] for k in ring.jwks["keys"]}
    _travel(monkeypatch, 600)
    assert old not in {k["kid"] for k in ring.jwks["keys"]}


def test_jwks_document_is_built_once_not_per_call(store):
    ring = KeyRing(store)
    assert ring.jwks_json is ring.jwks_json


def test_unknown_kid_cannot_be_retired(store):
    with pytest.raises(KeyManagementError, match="no key"):
        store.retire("nope")


def test_missing_keys_are_a_clear_error(tmp_path):
    ring = KeyRing(KeyStore(tmp_path, 600))
    with pytest.raises(KeyManagementError, match="idp keys generate"):
        ring.signing_key("RS256")
