"""Fixed-window rate limits kept in Redis.

Each (bucket, key) pair has a counter that lives for one window: the first hit
creates it with the window as its expiry, later hits only increment it. The
key part (a phone number, an IP address) is stored as its SHA-256, so Redis
holds no personal data in clear.

Redis errors are not caught: a limiter that cannot count must not let the
request through (warehouse fails open here; we fail closed).
"""

from __future__ import annotations

from idp.services.secrets import digest
from idp.store import Store

__all__ = ["RateLimiter", "TooManyAttemptsError"]


class TooManyAttemptsError(Exception):
    """The limit of a bucket is used up; it frees up in ``resets_in`` seconds."""

    def __init__(self, resets_in: int) -> None:
        super().__init__(f"too many attempts, try again in {resets_in} seconds")
        #: Seconds until the window ends (the ``Retry-After`` of a 429).
        self.resets_in = resets_in


class RateLimiter:
    """Counts hits per (bucket, key) in fixed windows and refuses those over the limit."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _key(self, bucket: str, key: str) -> str:
        return self.store.key("rl", bucket, digest(key))

    def hit(self, bucket: str, key: str, limit: int, window_seconds: int) -> None:
        """Count one hit, then refuse it if it is over ``limit`` in this window.

        :raises TooManyAttemptsError: this hit is number ``limit + 1`` or later.
        """
        name = self._key(bucket, key)
        # SET NX EX starts the window on the first hit; INCR keeps the expiry.
        # Both run in one MULTI, so no counter is ever left without an expiry.
        _, count, ttl = self.store.transaction(
            ("SET", name, 0, "EX", window_seconds, "NX"), ("INCR", name), ("TTL", name)
        )
        if count > limit:
            raise TooManyAttemptsError(max(ttl, 1))

    def check(self, bucket: str, key: str, limit: int) -> None:
        """Refuse, without counting, if the limit of this window is used up.

        :raises TooManyAttemptsError: ``limit`` hits were counted already.
        """
        name = self._key(bucket, key)
        count, ttl = self.store.transaction(("GET", name), ("TTL", name))
        if count is not None and int(count) >= limit:
            raise TooManyAttemptsError(max(ttl, 1))

    def reset(self, bucket: str, key: str) -> None:
        """Forget the hits of ``key`` (after a successful login, say)."""
        self.store.redis.delete(self._key(bucket, key))
