"""Temporary account locks with a progressive delay.

Passwords and second-factor codes have separate failure counters, so typing
the right password again does not wipe out wrong codes. Each attempt is
counted *before* it is checked (:meth:`Lockout.attempt`), so a burst of
parallel guesses gets no more tries than a patient attacker. After
``max_failures`` failures of one kind within ``window_seconds`` the account is
locked for ``base_lock_seconds``; every further lock within a day doubles the
delay, up to ``max_lock_seconds``. A successful password reset lifts the lock.

The state is in Redis, keyed by a digest of the account name, so unknown
accounts are locked exactly like known ones and nothing reveals which exist.
The lock's end is written by the application's clock.
"""

from __future__ import annotations

import math

from idp import clock
from idp.services.ratelimit import TooManyAttemptsError
from idp.services.secrets import digest
from idp.store import Store

__all__ = ["AccountLockedError", "Lockout"]

LOCK_HISTORY_SECONDS = 24 * 3600
#: The kinds of attempts, counted apart.
PASSWORD = "password"  # noqa: S105 - a counter name
SECOND_FACTOR = "code"


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
        max_lock_seconds: int = 3600,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.base_lock_seconds = base_lock_seconds
        self.max_lock_seconds = max_lock_seconds

    def _key(self, part: str, account: str) -> str:
        return self.store.key("lock", part, digest(account))

    def check(self, account: str) -> None:
        """:raises AccountLockedError: while the account is locked."""
        until = self.store.call("GET", self._key("until", account))
        if until is not None and float(until) > clock.now():
            raise AccountLockedError(math.ceil(float(until) - clock.now()))

    def attempt(self, account: str, kind: str) -> None:
        """Count one attempt of ``kind`` before it is checked.

        :raises AccountLockedError: the account is locked, or this attempt is
            beyond the allowance (parallel requests that raced past the check).
        """
        key = self._key(kind, account)
        # The lock read and the attempt counted in one round trip; an attempt
        # on a locked account is uncounted again (rare: a second one).
        until, _, attempts = self.store.transaction(
            ("GET", self._key("until", account)),
            ("SET", key, 0, "EX", self.window_seconds, "NX"),
            ("INCR", key),
        )
        if until is not None and float(until) > clock.now():
            # Uncounted; the expiry set again, so that a count that ran out in
            # between is not left behind without one.
            self.store.transaction(("DECR", key), ("EXPIRE", key, self.window_seconds))
            raise AccountLockedError(math.ceil(float(until) - clock.now()))
        if attempts > self.max_failures:
            raise AccountLockedError(self.base_lock_seconds)

    def failed(self, account: str, kind: str) -> int | None:
        """The counted attempt failed. Returns the lock's length in seconds when
        this failure locks the account."""
        key = self._key(kind, account)
        self.store.flush()  # a count cleared meanwhile is cleared first
        attempts = int(self.store.redis.get(key) or 0)
        if attempts < self.max_failures:
            return None
        try:
            self.check(account)
        except AccountLockedError:
            return None  # a concurrent failure has just locked it
        history_key = self._key("history", account)
        pipe = self.store.redis.pipeline()
        pipe.incr(history_key)
        pipe.expire(history_key, LOCK_HISTORY_SECONDS)
        pipe.delete(key)
        locks, _, _ = pipe.execute()
        seconds = min(self.base_lock_seconds * 2 ** (locks - 1), self.max_lock_seconds)
        until = clock.now() + seconds
        self.store.redis.set(self._key("until", account), until, ex=seconds + 60)
        return int(seconds)

    def succeeded(self, account: str, kind: str) -> None:
        """The attempt was right: its kind's count starts again (the lock
        history stays). Sent with the next round trip."""
        self.store.later("DEL", self._key(kind, account))

    def lift(self, account: str) -> None:
        """End a lock and every count: the owner proved who they are another way."""
        self.store.redis.delete(
            *(self._key(part, account) for part in ("until", "history", PASSWORD, SECOND_FACTOR))
        )
