"""Password hashing with argon2id.

Only human-chosen passwords get a slow hash: they have little entropy, so the
work factor is what protects them. Tokens, codes and client secrets are random
and hashed with SHA-256 (see :mod:`idp.services.secrets`).
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2 import Type
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

__all__ = ["Passwords"]


class Passwords:
    """Hashes and verifies passwords with the configured argon2id parameters."""

    def __init__(
        self, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 1
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        #: Verified against when the account is unknown or has no password, so
        #: that such attempts cost the same time as a real one.
        self._dummy_hash = self._hasher.hash("not a real password")
        #: Hashes computed at once by this process; more wait their turn.
        #: Each holds ``memory_kib`` while it runs, and several sharing a core
        #: evict each other's memory from its caches: one at a time per
        #: process (a worker per core) computed more of them a second than
        #: three, and bounds the memory a flood of logins can take.
        self._slots = threading.BoundedSemaphore(concurrency)

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Check ``password``; with no hash, do the same work and answer ``False``."""
        try:
            with self._slots:
                verified = self._hasher.verify(password_hash or self._dummy_hash, password)
            return verified and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)
