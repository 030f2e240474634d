"""Store.call and Store.transaction: commands on the calling thread's own connection."""

from __future__ import annotations

import _thread
import os
import threading
import time
from typing import Any

import fakeredis
import pytest
import redis

from idp.store import Store


def connection_of_a_thread(store: Store, start: Any = None) -> Any:
    """The own connection a new thread used for one read; the thread has ended."""
    made: list[Any] = []
    done = threading.Event()

    def read() -> None:
        store.call("GET", store.key("a"))
        made.append(store._own().connection)  # type: ignore[union-attr]
        done.set()

    if start is None:
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    else:
        start(read)
        done.wait(5)
    return made[0]


def killed(store: Store) -> None:
    """Redis drops the thread's own connection, as a restart does."""
    if isinstance(store.redis, fakeredis.FakeRedis):
        pytest.skip("the in-process emulation's CLIENT KILL takes the whole server down")
    own_id = store.call("CLIENT", "ID")
    store.redis.execute_command("CLIENT", "KILL", "ID", own_id)


def gone_stale(store: Store, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The thread's own connection, made and then gone stale: its next
    answer fails as after a Redis restart."""
    store.call("GET", store.key("a"))
    broken = store._own().connection  # type: ignore[union-attr]

    def gone(*_: Any, **__: Any) -> Any:
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(broken, "read_response", gone)
    return broken


def test_call_answers_as_the_client_does(store: Store) -> None:
    store.redis.set(store.key("a"), b"1")
    assert store.call("GET", store.key("a")) == store.redis.get(store.key("a")) == b"1"
    assert store.call("GET", store.key("missing")) is None
    assert store.call("MGET", store.key("a"), store.key("missing")) == [b"1", None]


def test_each_thread_keeps_its_own_connection(store: Store) -> None:
    store.call("GET", store.key("a"))
    mine = store._own().connection  # type: ignore[union-attr]
    store.call("GET", store.key("a"))
    assert store._own().connection is mine  # type: ignore[union-attr]
    theirs = connection_of_a_thread(store)
    assert theirs is not None
    assert theirs is not mine


def test_the_connection_of_an_ended_thread_is_closed(store: Store) -> None:
    """A development server runs each request on a thread of its own, and a
    server retires idle threads: their connections do not pile up."""
    connection = connection_of_a_thread(store)
    assert not connection.is_connected
    assert [own.connection for own in store._owns] == []


def test_the_connection_of_a_thread_not_made_by_threading_is_closed(store: Store) -> None:
    """A WSGI server's own threads (granian's are made outside Python)."""
    connection = connection_of_a_thread(store, lambda f: _thread.start_new_thread(f, ()))
    deadline = time.monotonic() + 5
    while connection.is_connected and time.monotonic() < deadline:
        time.sleep(0.01)  # the thread's local data goes once it has fully ended
    assert not connection.is_connected


def test_a_broken_connection_is_replaced_and_the_read_sent_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.redis.set(store.key("a"), b"1")
    broken = gone_stale(store, monkeypatch)
    assert store.call("GET", store.key("a")) == b"1"
    assert store._own().connection is not broken  # type: ignore[union-attr]
    assert not broken.is_connected


def test_a_second_failure_is_raised_and_its_connection_closed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.call("GET", store.key("a"))

    def gone(*_: Any, **__: Any) -> Any:
        raise redis.ConnectionError("Connection refused.")

    first = store._own().connection  # type: ignore[union-attr]
    monkeypatch.setattr(type(first), "read_response", gone)
    with pytest.raises(redis.ConnectionError):
        store.call("GET", store.key("a"))
    monkeypatch.undo()
    assert not first.is_connected
    assert store._own() is None  # the new connection failed its handshake: nothing kept
    assert store.call("GET", store.key("a")) is None


def test_a_connection_killed_by_the_server_is_replaced(store: Store) -> None:
    store.redis.set(store.key("a"), b"1")
    store.call("GET", store.key("a"))
    own_id = store.call("CLIENT", "ID")
    killed(store)
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


def test_a_transaction_replaces_a_connection_found_closed(store: Store) -> None:
    store.redis.set(store.key("code"), b"data")
    store.call("GET", store.key("a"))
    killed(store)
    assert store.transaction(("GETDEL", store.key("code"))) == [b"data"]


def test_a_failed_transaction_is_raised_not_sent_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.call("GET", store.key("a"))
    connection = store._own().connection  # type: ignore[union-attr]
    sent: list[bytes] = []

    def lost(*_: Any, **__: Any) -> Any:
        sent.append(b"")
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(connection, "send_packed_command", lost)
    with pytest.raises(redis.ConnectionError):
        store.transaction(("SET", store.key("a"), "1"))
    assert len(sent) == 1
    assert store.redis.get(store.key("a")) is None


def test_an_error_inside_a_transaction_is_raised(store: Store) -> None:
    store.redis.sadd(store.key("set"), "member")
    with pytest.raises(redis.ResponseError):
        store.transaction(("GETDEL", store.key("set")), ("SET", store.key("a"), "1"))
    assert store.call("GET", store.key("a")) == b"1"  # the connection still serves


def test_a_child_process_makes_its_own_connection(store: Store) -> None:
    store.redis.set(store.key("a"), b"1")
    store.call("GET", store.key("a"))
    pid = os.fork()
    if pid == 0:  # the child: none of the parent's connections, and a working one of its own
        ok = store._own() is None and not store._owns and store.call("GET", store.key("a")) == b"1"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.call("GET", store.key("a")) == b"1"  # the parent's connection is intact


def sends(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many commands each write of the thread's own connection carried."""
    store.call("PING")
    connection = store._own().connection  # type: ignore[union-attr]
    pack, counts = connection.pack_commands, []

    def counted(commands: Any) -> Any:
        counts.append(len(commands))
        return pack(commands)

    monkeypatch.setattr(connection, "pack_commands", counted)
    return counts


def test_a_later_deletion_rides_with_the_next_read(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.redis.set(store.key("a"), b"1")
    counts = sends(store, monkeypatch)
    store.later("DEL", store.key("a"))
    assert store.redis.get(store.key("a")) == b"1"  # not sent yet
    assert store.call("GET", store.key("a")) is None  # sent first, in the same write
    assert counts == [2]
    store.call("GET", store.key("a"))
    assert counts == [2, 1]  # and only once


def test_a_later_deletion_rides_with_the_next_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.redis.set(store.key("a"), b"1")
    counts = sends(store, monkeypatch)
    store.later("DEL", store.key("a"))
    assert store.transaction(("GET", store.key("a")), ("INCR", store.key("b"))) == [None, 1]
    assert counts == [5]  # DEL, MULTI, GET, INCR, EXEC


def test_what_waits_is_sent_at_the_end_of_the_app_context(app) -> None:  # type: ignore[no-untyped-def]
    store = app.extensions["idp.store"]
    store.redis.set(store.key("a"), b"1")
    with app.app_context():
        store.later("DEL", store.key("a"))
        assert store.redis.get(store.key("a")) == b"1"
    assert store.redis.get(store.key("a")) is None
    store.flush()  # nothing left: no round trip, no error


def test_what_waits_is_sent_again_on_a_new_connection_if_the_old_one_is_gone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.redis.set(store.key("a"), b"1")
    broken = gone_stale(store, monkeypatch)
    store.later("DEL", store.key("a"))
    store.flush()
    assert store.redis.get(store.key("a")) is None
    assert store._own().connection is not broken  # type: ignore[union-attr]
