"""The Redis connection: a real server, or an in-process emulation (fakeredis)
when ``IDP_REDIS_URL`` is unset.

Every key goes through :meth:`Store.key` so that one Redis can serve several
deployments (and every test its own namespace).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from flask import Flask
from flask import current_app

__all__ = ["Store", "get_store", "init_app"]


class Store:
    """A Redis client plus the key prefix of this deployment."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._own = threading.local()
        # Each thread's own connection with its thread: closed by close(), or
        # once the thread has ended (a development server's thread per request).
        self._made: list[tuple[threading.Thread, Any]] = []
        self._lock = threading.Lock()

    def call(self, *command: Any) -> Any:
        """The raw answer to one idempotent command (``GET``, ``MGET``, a
        ``SET`` of a fresh key) sent on the calling thread's own connection.

        For the hot paths: the client's per-command machinery (taking a
        connection from the pool and giving it back, polling it for stray
        data, the retry wrapper) costs three times the round trip's own CPU
        (measured: 39 against 13 µs). A connection that fails is closed and
        the command sent once more on a new one (safe, the command being
        idempotent); a second failure is raised.
        """
        connection = self._connection()
        if connection is not None:
            try:
                return self._send(connection, [command])[0]
            except (redis.ConnectionError, redis.TimeoutError):
                # Gone stale (a Redis restart): once more, on a new connection.
                self._drop(connection)
        return self._send(self._new_connection(), [command])[0]

    def transaction(self, *commands: tuple[Any, ...]) -> list[Any]:
        """The raw answers to ``commands`` run atomically (``MULTI`` …
        ``EXEC``) on the calling thread's own connection, in one round trip.
        Never sent twice: a failure is raised (the caller cannot know whether
        the transaction ran)."""
        connection = self._connection() or self._new_connection()
        try:
            answers = self._send(connection, [("MULTI",), *commands, ("EXEC",)])
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop(connection)
            raise
        for answer in answers[-1]:
            if isinstance(answer, redis.ResponseError):
                raise answer
        return list(answers[-1])

    def _connection(self) -> Any:
        own = self._own
        connection = own.__dict__.get("connection")
        return connection if connection is not None and own.pid == os.getpid() else None

    def _new_connection(self) -> Any:
        connection = self.redis.connection_pool.make_connection()
        connection.connect()  # failing here leaves nothing behind
        with self._lock:
            ended = [made for made in self._made if not made[0].is_alive()]
            self._made = [made for made in self._made if made[0].is_alive()]
            self._made.append((threading.current_thread(), connection))
        for _, old in ended:
            old.disconnect()
        self._own.connection, self._own.pid = connection, os.getpid()
        return connection

    def _drop(self, connection: Any) -> None:
        self._own.connection = None
        with self._lock:
            self._made = [made for made in self._made if made[1] is not connection]

    def close(self) -> None:
        """Close the threads' own connections and the client's pool."""
        with self._lock:
            made, self._made = self._made, []
        for _, connection in made:
            connection.disconnect()
        self.redis.close()

    @staticmethod
    def _send(connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one write and read their answers; on any
        failure the connection is closed, so nothing half-read is left for
        the next command."""
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            return [connection.read_response() for _ in commands]
        except BaseException:
            connection.disconnect()
            raise

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @classmethod
    def from_url(cls, url: str, prefix: str, **kwargs: Any) -> Store:
        if url:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, **kwargs)
        else:
            import fakeredis

            client = fakeredis.FakeRedis(**kwargs)
        return cls(client, prefix)


def init_app(app: Flask, store: Store | None = None) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.store"] = store or Store.from_url(settings.redis_url, settings.redis_prefix)


def get_store() -> Store:
    store: Store = current_app.extensions["idp.store"]
    return store
