"""High-entropy secrets: generation, hashing and constant-time comparison.

Client secrets, authorization codes, refresh tokens and session ids are 256-bit
random values, so a single SHA-256 is enough to store them safely, and it keeps
the token endpoint fast (a slow hash would be a denial-of-service lever).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["digest", "matches", "new_secret"]

SECRET_BYTES = 32


def new_secret() -> str:
    """A URL-safe random string with 256 bits of entropy (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(value: str) -> str:
    """The hex SHA-256 of ``value``: what is stored in place of the secret."""
    return hashlib.sha256(value.encode()).hexdigest()


def matches(value: str, stored_digest: str | None) -> bool:
    """Compare ``value`` with a stored digest in constant time."""
    if not stored_digest:
        return False
    return hmac.compare_digest(digest(value), stored_digest)
