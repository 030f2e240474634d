"""Encryption of secrets the server must read back, such as TOTP secrets.

Most secrets are stored as hashes (see :mod:`idp.services.secrets`). A TOTP
secret can't be: every check must recompute codes from it. So it is encrypted
at rest with Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``). A
copy of the database alone then doesn't let anyone mint codes. Fernet is
authenticated, so a changed ciphertext fails to decrypt instead of giving
garbage.

Keys rotate with :class:`~cryptography.fernet.MultiFernet`. The first key
encrypts, and every key decrypts.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["DecryptionError", "InvalidKeyError", "SecretBox", "derive_key", "generate_key"]

#: HKDF ``info`` of the development key. It binds the derived key to this one
#: use, so it never equals a key derived from the same secret for another purpose.
DERIVED_KEY_INFO = b"idp totp encryption"


class InvalidKeyError(ValueError):
    """A key is not a urlsafe base64 encoding of 32 bytes, or none was given."""


class DecryptionError(Exception):
    """The ciphertext was changed, is malformed, or was encrypted with an unknown key."""


def generate_key() -> str:
    """A new random Fernet key, for ``IDP_TOTP_ENCRYPTION_KEYS``."""
    return Fernet.generate_key().decode("ascii")


def derive_key(secret_key: str) -> str:
    """A Fernet key derived from the application secret, for development.

    HKDF-SHA256 is enough here because the input is already a random secret.
    HKDF doesn't have to slow down guessing the way a password KDF does.
    Deployments should set a dedicated key, so that a leaked ``SECRET_KEY``
    doesn't also expose the TOTP secrets, and so that each can be rotated on
    its own.
    """
    if not secret_key:
        # An empty input would give a fixed, public key.
        raise InvalidKeyError("cannot derive a key from an empty secret")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVED_KEY_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode("ascii")


class SecretBox:
    """Encrypts and decrypts short strings with one or more Fernet keys.

    :param keys: one key, or several separated by commas. The first encrypts.
        The others only decrypt: they are older keys kept during a rotation.
    """

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",")]
        if not any(parts):
            raise InvalidKeyError("no encryption key given")
        fernets = []
        for position, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part))
            except ValueError:
                # Don't echo the key: this message may end up in a log.
                raise InvalidKeyError(
                    f"encryption key {position} is not a urlsafe base64 32-byte key"
                ) from None
        self._fernet = MultiFernet(fernets)

    def encrypt(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` with the first key. The result is ASCII."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt ``token`` with whichever key made it.

        :raises DecryptionError: if the token was changed or no key fits.
        """
        try:
            return self._fernet.decrypt(token).decode()
        except (InvalidToken, ValueError):
            # ValueError: a token with non-ASCII characters, or a plaintext that
            # isn't UTF-8 (impossible for tokens made by :meth:`encrypt`).
            raise DecryptionError("cannot decrypt the value") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the first key, so that older keys can be retired.

        :raises DecryptionError: if the token was changed or no key fits.
        """
        try:
            return self._fernet.rotate(token).decode("ascii")
        except (InvalidToken, ValueError):
            raise DecryptionError("cannot decrypt the value") from None
