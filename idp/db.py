"""The SQL connections: one engine per app, one session per request; a second
engine, where each statement commits by itself, for the one-statement work of
the hot-path shortcuts and the reads that need no transaction; and on
PostgreSQL a third like it whose commits do not wait for the write-ahead log's
flush, for the code exchange's new grant (see :func:`init_app`)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask import current_app
from flask import g
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

__all__ = ["dispose", "get_reader", "get_recorder", "get_session", "init_app", "make_engine"]

#: A pooled connection back in the pool for less than this is handed out
#: without a ping (as PgBouncer's ``server_check_delay`` and HikariCP's
#: ``aliveBypassWindowMs`` do): under load connections are reused within
#: milliseconds, and a ping would add a round trip to every request.
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(url: str, single_statements: bool = False, wait_for_flush: bool = True) -> Engine:
    """Create the engine, with SQLite made safe for a threaded development server.

    A connection that has been idle in the pool for a while is pinged
    before use (a server restart or an idle timeout does not fail the next
    request). With ``single_statements``: each statement commits by itself
    (no BEGIN or ROLLBACK round trips). Without ``wait_for_flush``
    (PostgreSQL): a commit returns before the write-ahead log reaches the disk
    (``synchronous_commit=off``); a crash of the database can lose the last
    moment's commits, never corrupt or half-apply one.
    """
    kwargs: dict[str, Any] = {}
    if single_statements:
        kwargs["isolation_level"] = "AUTOCOMMIT"
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine, "checkin", _note_idle)
        event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
        if not wait_for_flush:
            # A session setting of each new connection, leaving the URL's, the
            # environment's (PGOPTIONS) and a service file's options as they are.
            event.listen(engine, "connect", _commit_without_waiting_for_flush)
    return engine


def _commit_without_waiting_for_flush(dbapi_connection: Any, _record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # the setting outside any transaction: it stays
    try:
        dbapi_connection.execute("SET synchronous_commit TO off")
    finally:
        dbapi_connection.autocommit = autocommit


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that was idle for :data:`PING_AFTER_IDLE_SECONDS`;
    a dead one is replaced by the pool (``DisconnectionError``)."""
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        raise exc.DisconnectionError(str(error)) from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


#: The app's engines, by extension name.
ENGINES = ("idp.engine", "idp.statement_engine", "idp.grant_engine")


def init_app(app: Flask) -> None:
    """The engines and session makers.

    ``idp.grant_engine`` makes the grant of a code exchange (the shortcut's
    one statement). Unless ``durable_new_grants`` is set, its commits on
    PostgreSQL do not wait for the flush: a flow's latency then does not
    include a disk write. What a database crash can lose is a grant made in
    its last moment: UserInfo then refuses its access token, its refresh
    token is unknown, its spent code stays spent; the access token itself
    lives out its few minutes, unless its session or its user is ended
    (deny-listed by ``sid`` and subject, not by grant). Every other write
    (refresh token rotation, revocation, logout, accounts, factors, audit)
    waits for the flush as usual.
    """
    settings = app.extensions["idp.settings"]
    engine = make_engine(settings.sqlalchemy_url)
    app.extensions["idp.engine"] = engine
    app.extensions["idp.statement_engine"] = make_engine(
        settings.sqlalchemy_url, single_statements=True
    )
    app.extensions["idp.grant_engine"] = make_engine(
        settings.sqlalchemy_url,
        single_statements=True,
        wait_for_flush=settings.durable_new_grants,
    )
    app.extensions["idp.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.extensions["idp.readermaker"] = sessionmaker(
        app.extensions["idp.statement_engine"], expire_on_commit=False
    )
    app.teardown_appcontext(_close_session)


def dispose(app: Flask) -> None:
    """Close every pooled connection of the app's engines."""
    for name in ENGINES:
        app.extensions[name].dispose()


def get_session() -> Session:
    """The request's SQL session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["idp.sessionmaker"]()
    session: Session = g.db_session
    return session


def get_reader() -> Session:
    """The request's session for reads that need no transaction (the
    password step's account): on the engine where each statement commits by
    itself, so a lone SELECT is one round trip, not BEGIN, SELECT and
    ROLLBACK. What it writes is committed statement by statement."""
    if "db_reader" not in g:
        g.db_reader = current_app.extensions["idp.readermaker"]()
    session: Session = g.db_reader
    return session


def get_recorder() -> Session:
    """Where to write a record of what the request did: the request's session
    when it has a transaction open (the record commits with its writes), else
    the reader (the record is one statement, committed by itself: no BEGIN
    and COMMIT round trips)."""
    session: Session | None = g.get("db_session")
    if session is not None and session.in_transaction():
        return session
    return get_reader()


def _close_session(_exc: BaseException | None) -> None:
    for name in ("db_session", "db_reader"):
        session = g.pop(name, None)
        if session is not None:
            session.close()
