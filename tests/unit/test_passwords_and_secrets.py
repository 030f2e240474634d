from __future__ import annotations

from idp.services import secrets
from idp.services.passwords import Passwords


def _passwords(time_cost: int = 1) -> Passwords:
    return Passwords(time_cost=time_cost, memory_kib=8, parallelism=1)


def test_password_hash_is_argon2id_and_verifies():
    passwords = _passwords()
    hashed = passwords.hash("Sikker-kode-1")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "Sikker-kode-1")
    assert not passwords.verify(hashed, "sikker-kode-1")


def test_missing_hash_never_verifies():
    assert not _passwords().verify(None, "not a real password")


def test_changed_parameters_ask_for_a_rehash():
    hashed = _passwords(time_cost=1).hash("Sikker-kode-1")
    assert _passwords(time_cost=2).needs_rehash(hashed)
    assert not _passwords(time_cost=1).needs_rehash(hashed)


def test_secrets_have_256_bits_and_are_stored_as_sha256():
    value = secrets.new_secret()
    assert len(value) >= 43
    assert len(secrets.digest(value)) == 64
    assert secrets.matches(value, secrets.digest(value))
    assert not secrets.matches(value + "x", secrets.digest(value))
    assert not secrets.matches(value, None)
