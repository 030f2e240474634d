"""The one clock the identity provider reads, so tests can move time forward."""

from __future__ import annotations

import datetime as dt
import time

__all__ = ["now", "utcnow"]


def now() -> int:
    """Seconds since the epoch, as used in JWT ``iat``/``exp`` claims."""
    return int(time.time())


def utcnow() -> dt.datetime:
    """The current time as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(now(), tz=dt.UTC)
