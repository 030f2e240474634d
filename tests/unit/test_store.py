"""Store.call and Store.transaction: commands on the calling thread's own connection."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from idp.store import Store


def connection_of_a_thread(store: Store) -> Any:
    """The own connection a new thread uses for one read; the thread has ended."""
    made: list[Any] = []

    def read() -> None:
        store.call("GET", store.key("a"))
        made.append(store._own.connection)

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return made[0]


def test_read_answers_as_the_client_does(store: Store) -> None:
    store.redis.set(store.key("a"), b"1")
    assert store.call("GET", store.key("a")) == store.redis.get(store.key("a")) == b"1"
    assert store.call("GET", store.key("missing")) is None
    assert store.call("MGET", store.key("a"), store.key("missing")) == [b"1", None]


def test_each_thread_keeps_its_own_connection(store: Store) -> None:
    store.call("GET", store.key("a"))
    mine = store._own.connection
    store.call("GET", store.key("a"))
    assert store._own.connection is mine
    theirs = connection_of_a_thread(store)
    assert theirs is not None
    assert theirs is not mine


def test_a_broken_connection_is_replaced_and_the_read_sent_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.redis.set(store.key("a"), b"1")
    store.call("GET", store.key("a"))
    broken = store._own.connection

    def gone(*_: Any, **__: Any) -> Any:
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(broken, "read_response", gone)
    assert store.call("GET", store.key("a")) == b"1"
    assert store._own.connection is not broken


def test_a_second_failure_is_raised_and_leaves_no_connection_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.call("GET", store.key("a"))

    def gone(*_: Any, **__: Any) -> Any:
        raise redis.ConnectionError("Connection refused.")

    connection_class = type(store._own.connection)
    monkeypatch.setattr(connection_class, "read_response", gone)
    with pytest.raises(redis.ConnectionError):
        store.call("GET", store.key("a"))
    assert store._own.connection is None
    monkeypatch.undo()
    assert store.call("GET", store.key("a")) is None


def test_a_connection_killed_by_the_server_is_replaced(store: Store) -> None:
    """The stale-connection case for real: Redis drops the client (as a
    restart or ``CLIENT KILL`` does) between two reads."""
    store.redis.set(store.key("a"), b"1")
    store.call("GET", store.key("a"))
    own_id = store.call("CLIENT", "ID")
    store.redis.execute_command("CLIENT", "KILL", "ID", own_id)
    assert store.call("GET", store.key("a")) == b"1"
    assert store.call("CLIENT", "ID") != own_id


def test_transaction_runs_its_commands_atomically(store: Store) -> None:
    store.redis.set(store.key("code"), b"data")
    taken, marked = store.transaction(
        ("GETDEL", store.key("code")), ("SET", store.key("used"), "g1", "NX")
    )
    assert taken == b"data"
    assert marked is not None
    again, not_marked = store.transaction(
        ("GETDEL", store.key("code")), ("SET", store.key("used"), "g2", "NX")
    )
    assert again is None
    assert not_marked is None
    assert store.redis.get(store.key("used")) == b"g1"


def test_a_failed_transaction_is_raised_not_sent_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.call("GET", store.key("a"))
    connection = store._own.connection
    sent: list[bytes] = []

    def lost(*_: Any, **__: Any) -> Any:
        sent.append(b"")
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(connection, "send_packed_command", lost)
    with pytest.raises(redis.ConnectionError):
        store.transaction(("SET", store.key("a"), "1"))
    assert len(sent) == 1
    assert store._own.connection is None


def test_an_error_inside_a_transaction_is_raised(store: Store) -> None:
    store.redis.sadd(store.key("set"), "member")
    with pytest.raises(redis.ResponseError):
        store.transaction(("GETDEL", store.key("set")), ("SET", store.key("a"), "1"))
    assert store.call("GET", store.key("a")) == b"1"  # the connection still serves


def test_the_connection_of_an_ended_thread_is_closed(store: Store) -> None:
    """A development server runs each request on a new thread: the
    connections of threads that have ended do not pile up."""
    first = connection_of_a_thread(store)
    assert first.is_connected
    second = connection_of_a_thread(store)
    assert not first.is_connected
    assert second.is_connected
    assert [connection for _, connection in store._made] == [second]
