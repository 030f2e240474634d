from __future__ import annotations

import base64

import pytest

from idp.services.crypto import DecryptionError
from idp.services.crypto import InvalidKeyError
from idp.services.crypto import SecretBox
from idp.services.crypto import derive_key
from idp.services.crypto import generate_key

OLD_KEY = generate_key()
NEW_KEY = generate_key()


def test_encrypted_value_decrypts_to_the_original():
    box = SecretBox(NEW_KEY)
    token = box.encrypt("JBSWY3DPEHPK3PXP")
    assert token != "JBSWY3DPEHPK3PXP"
    assert box.decrypt(token) == "JBSWY3DPEHPK3PXP"


def test_encrypting_twice_gives_different_ciphertexts():
    box = SecretBox(NEW_KEY)
    assert box.encrypt("same") != box.encrypt("same")


def test_changed_ciphertext_is_refused():
    box = SecretBox(NEW_KEY)
    raw = bytearray(base64.urlsafe_b64decode(box.encrypt("JBSWY3DPEHPK3PXP")))
    raw[-40] ^= 1
    with pytest.raises(DecryptionError):
        box.decrypt(base64.urlsafe_b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("token", ["", "not a token", "æøå"])
def test_malformed_ciphertext_is_refused(token: str):
    with pytest.raises(DecryptionError):
        SecretBox(NEW_KEY).decrypt(token)


def test_ciphertext_from_another_key_is_refused():
    token = SecretBox(OLD_KEY).encrypt("secret")
    with pytest.raises(DecryptionError):
        SecretBox(NEW_KEY).decrypt(token)


def test_rotation_decrypts_with_old_key_and_encrypts_with_the_first():
    old_token = SecretBox(OLD_KEY).encrypt("secret")
    box = SecretBox(f"{NEW_KEY}, {OLD_KEY}")

    assert box.decrypt(old_token) == "secret"
    new_token = box.encrypt("secret")
    assert SecretBox(NEW_KEY).decrypt(new_token) == "secret"
    with pytest.raises(DecryptionError):
        SecretBox(OLD_KEY).decrypt(new_token)


def test_rotate_reencrypts_with_the_first_key():
    old_token = SecretBox(OLD_KEY).encrypt("secret")
    rotated = SecretBox(f"{NEW_KEY},{OLD_KEY}").rotate(old_token)
    assert SecretBox(NEW_KEY).decrypt(rotated) == "secret"


@pytest.mark.parametrize(
    "keys",
    ["", " , ", "too-short", f"{NEW_KEY},not-a-key"],
    ids=["empty", "commas", "short", "second-bad"],
)
def test_malformed_key_is_refused_without_echoing_it(keys: str):
    with pytest.raises(InvalidKeyError) as excinfo:
        SecretBox(keys)
    assert NEW_KEY not in str(excinfo.value)


def test_derived_key_is_a_stable_fernet_key():
    key = derive_key("application secret")
    assert key == derive_key("application secret")
    assert key != derive_key("another secret")
    assert len(base64.urlsafe_b64decode(key)) == 32
    box = SecretBox(key)
    assert box.decrypt(box.encrypt("secret")) == "secret"


def test_key_cannot_be_derived_from_an_empty_secret():
    with pytest.raises(InvalidKeyError):
        derive_key("")
