"""The one-time recovery code: the way back in when every second factor is lost.

The code is shown once, when it is made, and only its hash is stored. Users
write it down or print it, and may type it back months later. So the alphabet
leaves out characters that are easy to confuse (``0/O``, ``1/I/L``, ``5/S``).
Input is accepted in any case, with or without the dashes.

A code has 20 characters from a 29-character alphabet, about 97 bits of
entropy. Guessing it offline from a stolen hash would take about 2**96
SHA-256 evaluations, far out of reach. So a single SHA-256 protects it as
well as a slow hash would, without adding a costly step to a login path (see
:mod:`idp.services.secrets`). The slow hash exists for human-chosen
passwords, which have little entropy. Online guessing is limited by the
caller's rate limits.
"""

from __future__ import annotations

import secrets

from idp.services import secrets as secret_digests

__all__ = ["ALPHABET", "generate_code", "hash_code", "normalize", "verify_code"]

#: Upper-case letters and digits, without 0, O, 1, I, L, 5 and S.
ALPHABET = "ABCDEFGHJKMNPQRTUVWXYZ2346789"
CODE_LENGTH = 20
GROUP_LENGTH = 4
SEPARATOR = "-"


def generate_code() -> str:
    """A new random code, formatted like ``ABCD-EF23-GH46-JK78-MN9P``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return SEPARATOR.join(raw[i : i + GROUP_LENGTH] for i in range(0, CODE_LENGTH, GROUP_LENGTH))


def normalize(code: str) -> str:
    """``code`` in upper case, without whitespace or dashes: the form that is hashed."""
    return "".join(code.split()).replace(SEPARATOR, "").upper()


def hash_code(code: str) -> str:
    """The SHA-256 of the normalized code: what is stored in place of the code."""
    return secret_digests.digest(normalize(code))


def verify_code(code: str, stored_hash: str | None) -> bool:
    """Whether ``code`` matches ``stored_hash``, compared in constant time.

    The check doesn't consume the code. The caller must delete or replace the
    stored hash atomically in the same step.
    """
    return secret_digests.matches(normalize(code), stored_hash)
