"""The SQL connection pool on PostgreSQL: a connection idle for a while is
pinged before use, and replaced when the server has dropped it; one used
moments ago is handed out without the extra round trip."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from idp import db


@pytest.fixture
def engine(app):  # type: ignore[no-untyped-def]
    engine = app.extensions["idp.engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("pings are for PostgreSQL")
    return engine


def backend(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_dropped_by_the_server_is_replaced(app, engine, monkeypatch):
    dropped = backend(engine)
    with app.extensions["idp.statement_engine"].connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend(engine) != dropped


def test_a_connection_used_moments_ago_is_not_pinged(engine, monkeypatch):
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(connection):  # type: ignore[no-untyped-def]
        pings.append(connection)
        return ping(connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    backend(engine)  # a new connection is pinged once
    pings.clear()
    backend(engine)
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    backend(engine)
    assert len(pings) == 1
