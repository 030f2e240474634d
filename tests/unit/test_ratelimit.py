"""The fixed-window rate limiter."""

from __future__ import annotations

import time

import fakeredis
import pytest
import redis

from idp.services.ratelimit import RateLimiter
from idp.services.ratelimit import TooManyAttemptsError
from idp.store import Store


@pytest.fixture
def limiter(store: Store) -> RateLimiter:
    return RateLimiter(store)


def _counter(store: Store) -> str:
    """The name of the only counter in the store."""
    (name,) = store.redis.scan_iter(match=store.key("rl", "*"))
    return name.decode()


def _end_window(store: Store) -> None:
    """Let the running window run out (the counter's expiry is Redis's own clock)."""
    store.redis.pexpire(_counter(store), 1)
    time.sleep(0.01)


def test_hits_up_to_the_limit_pass(limiter: RateLimiter) -> None:
    for _ in range(3):
        limiter.hit("login", "192.0.2.1", limit=3, window_seconds=60)


def test_hit_over_the_limit_raises_with_the_whole_window_left(limiter: RateLimiter) -> None:
    for _ in range(3):
        limiter.hit("login", "192.0.2.1", limit=3, window_seconds=60)

    with pytest.raises(TooManyAttemptsError) as raised:
        limiter.hit("login", "192.0.2.1", limit=3, window_seconds=60)

    assert raised.value.resets_in == 60


def test_resets_in_is_what_is_left_of_the_window(store: Store, limiter: RateLimiter) -> None:
    limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)
    store.redis.pexpire(_counter(store), 25_000)

    with pytest.raises(TooManyAttemptsError) as raised:
        limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)

    assert raised.value.resets_in == 25


def test_later_hits_do_not_extend_the_window(store: Store, limiter: RateLimiter) -> None:
    limiter.hit("login", "192.0.2.1", limit=5, window_seconds=60)
    store.redis.pexpire(_counter(store), 25_000)

    limiter.hit("login", "192.0.2.1", limit=5, window_seconds=60)

    assert store.redis.ttl(_counter(store)) == 25


def test_a_new_window_starts_counting_from_zero(store: Store, limiter: RateLimiter) -> None:
    limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)
    with pytest.raises(TooManyAttemptsError):
        limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)

    _end_window(store)

    limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)
    assert store.redis.get(_counter(store)) == b"1"
    assert store.redis.ttl(_counter(store)) == 60


def test_check_does_not_count(limiter: RateLimiter) -> None:
    for _ in range(5):
        limiter.check("login", "192.0.2.1", limit=2)

    limiter.hit("login", "192.0.2.1", limit=2, window_seconds=60)
    limiter.hit("login", "192.0.2.1", limit=2, window_seconds=60)


def test_check_raises_once_the_limit_is_used_up(limiter: RateLimiter) -> None:
    limiter.hit("login", "192.0.2.1", limit=2, window_seconds=60)
    limiter.check("login", "192.0.2.1", limit=2)
    limiter.hit("login", "192.0.2.1", limit=2, window_seconds=60)

    with pytest.raises(TooManyAttemptsError) as raised:
        limiter.check("login", "192.0.2.1", limit=2)

    assert raised.value.resets_in == 60


def test_reset_forgets_the_hits(limiter: RateLimiter) -> None:
    limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)

    limiter.reset("login", "192.0.2.1")

    limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)


@pytest.mark.parametrize(
    ("bucket", "key"),
    [("login", "192.0.2.2"), ("sms", "192.0.2.1")],
)
def test_buckets_and_keys_count_apart(limiter: RateLimiter, bucket: str, key: str) -> None:
    limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)

    limiter.hit(bucket, key, limit=1, window_seconds=60)


def test_keys_are_not_stored_in_clear(store: Store, limiter: RateLimiter) -> None:
    limiter.hit("sms", "+4520123456", limit=1, window_seconds=60)

    assert "+4520123456" not in _counter(store)
    assert "4520123456" not in _counter(store)


def test_redis_errors_propagate() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    limiter = RateLimiter(Store(fakeredis.FakeRedis(server=server), "test:"))

    with pytest.raises(redis.ConnectionError):
        limiter.hit("login", "192.0.2.1", limit=1, window_seconds=60)
    with pytest.raises(redis.ConnectionError):
        limiter.check("login", "192.0.2.1", limit=1)
