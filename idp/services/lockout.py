"""Temporary account locks with a progressive delay.

After ``max_failures`` failed attempts (passwords or second-factor codes) within
``window_seconds`` the account is locked for ``base_lock_seconds``; every
further lock within a day doubles the delay, up to ``max_lock_seconds``. The
state is in Redis, keyed by a digest of the account name, so unknown accounts
are locked exactly like known ones and nothing reveals which exist.
"""

from __future__ import annotations

import math

from idp import clock
from idp.services.ratelimit import TooManyAttemptsError
from idp.services.secrets import digest
from idp.store import Store

__all__ = ["AccountLockedError", "Lockout"]

LOCK_HISTORY_SECONDS = 24 * 3600


class AccountLockedError(TooManyAttemptsError):
    """The account is locked for ``resets_in`` more seconds."""


class Lockout:
    def __init__(
        self,
        store: Store,
        *,
        max_failures: int = 5,
        window_seconds: int = 15 * 60,
        base_lock_seconds: int = 5 * 60,
        max_lock_seconds: int = 24 * 3600,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.base_lock_seconds = base_lock_seconds
        self.max_lock_seconds = max_lock_seconds

    def _key(self, kind: str, account: str) -> str:
        return self.store.key("lock", kind, digest(account))

    def check(self, account: str) -> None:
        """:raises AccountLockedError: while the account is locked."""
        until = self.store.redis.get(self._key("until", account))
        if until is not None and float(until) > clock.now():
            raise AccountLockedError(math.ceil(float(until) - clock.now()))

    def failure(self, account: str) -> int | None:
        """Count a failure; returns the lock's length when this one locks the account."""
        failures_key = self._key("failures", account)
        pipe = self.store.redis.pipeline()
        pipe.set(failures_key, 0, ex=self.window_seconds, nx=True)
        pipe.incr(failures_key)
        _, failures = pipe.execute()
        if failures < self.max_failures:
            return None
        history_key = self._key("history", account)
        pipe = self.store.redis.pipeline()
        pipe.incr(history_key)
        pipe.expire(history_key, LOCK_HISTORY_SECONDS)
        pipe.delete(failures_key)
        locks, _, _ = pipe.execute()
        seconds = min(self.base_lock_seconds * 2 ** (locks - 1), self.max_lock_seconds)
        # The end of the lock, by the application's clock; Redis forgets it later.
        until = clock.now() + seconds
        self.store.redis.set(self._key("until", account), until, ex=seconds + 60)
        return int(seconds)

    def success(self, account: str) -> None:
        """A successful login clears the failure count (not the lock history)."""
        self.store.redis.delete(self._key("failures", account))
