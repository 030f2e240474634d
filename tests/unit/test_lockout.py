"""The progressive account lock (on fakeredis, or Redis when configured)."""

from __future__ import annotations

import pytest

from idp import clock
from idp.services.lockout import PASSWORD
from idp.services.lockout import SECOND_FACTOR
from idp.services.lockout import AccountLockedError
from idp.services.lockout import Lockout


@pytest.fixture
def lockout(store):  # type: ignore[no-untyped-def]
    return Lockout(store, max_failures=3, base_lock_seconds=60, max_lock_seconds=200)


def fail(lockout: Lockout, kind: str = PASSWORD) -> int | None:
    lockout.attempt("kim@example.com", kind)
    return lockout.failed("kim@example.com", kind)


def test_the_last_allowed_failure_locks_and_the_lock_refuses_everything(lockout):
    assert fail(lockout) is None
    assert fail(lockout) is None
    assert fail(lockout) == 60
    with pytest.raises(AccountLockedError) as locked:
        lockout.attempt("kim@example.com", SECOND_FACTOR)
    assert 59 <= locked.value.resets_in <= 60


def test_attempts_are_counted_before_they_are_checked(lockout):
    """Parallel guesses that all pass the check before any failure is
    recorded: only the allowance is let through."""
    for _ in range(3):
        lockout.attempt("kim@example.com", PASSWORD)
    with pytest.raises(AccountLockedError):
        lockout.attempt("kim@example.com", PASSWORD)


def test_a_right_password_does_not_clear_wrong_codes(lockout):
    fail(lockout, SECOND_FACTOR)
    fail(lockout, SECOND_FACTOR)
    lockout.attempt("kim@example.com", PASSWORD)
    lockout.succeeded("kim@example.com", PASSWORD)
    assert fail(lockout, SECOND_FACTOR) == 60


def test_locks_double_up_to_the_maximum_and_end_by_the_clock(lockout, monkeypatch):
    now = clock.now()
    lengths = []
    for _ in range(4):
        monkeypatch.setattr(clock, "now", lambda now=now: now)
        lengths += [fail(lockout), fail(lockout), fail(lockout)]
        now += 201
    assert [n for n in lengths if n] == [60, 120, 200, 200]


def test_lift_ends_the_lock_and_its_history(lockout):
    for _ in range(3):
        fail(lockout)
    lockout.lift("kim@example.com")
    lockout.check("kim@example.com")
    for _ in range(2):
        fail(lockout)
    assert fail(lockout) == 60  # the first lock again, not a doubled one


def test_accounts_are_apart(lockout):
    for _ in range(3):
        fail(lockout)
    lockout.check("ann@example.com")


def test_attempts_on_a_locked_account_are_not_counted(lockout, monkeypatch):
    """Tries refused by a lock do not eat into the allowance after it."""
    now = clock.now()
    monkeypatch.setattr(clock, "now", lambda: now)
    for _ in range(3):
        fail(lockout)
    for _ in range(5):
        with pytest.raises(AccountLockedError):
            lockout.attempt("kim@example.com", PASSWORD)
    count = lockout._key(PASSWORD, "kim@example.com")
    assert int(lockout.store.redis.get(count)) == 0
    assert 0 < lockout.store.redis.ttl(count) <= lockout.window_seconds  # never without one
    monkeypatch.setattr(clock, "now", lambda: now + 61)
    assert fail(lockout) is None
    assert fail(lockout) is None
    assert fail(lockout) == 120  # the second lock within a day: doubled
