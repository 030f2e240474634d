"""The SQL connections on PostgreSQL: a connection idle for a while is pinged
before use, and replaced when the server has dropped it; one used moments ago
is handed out without the extra round trip. The code exchange's grant commits
without waiting for the disk unless durable_new_grants is set."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy import text

from idp import db
from tests.factories import Pkce
from tests.flows import exchange
from tests.flows import login_for_code


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


def _synchronous_commit(app, name: str) -> str:  # type: ignore[no-untyped-def]
    with app.extensions[name].connect() as connection:
        return str(connection.execute(text("SHOW synchronous_commit")).scalar_one())


def test_the_grant_of_a_code_exchange_commits_without_waiting_for_the_disk(
    app, engine, client, factory
):  # type: ignore[no-untyped-def]
    """Only the grant engine skips the wait; the code exchange's grant is made
    there, and is in the table for every other connection at once."""
    assert _synchronous_commit(app, "idp.grant_engine") == "off"
    durable = _synchronous_commit(app, "idp.engine")
    assert durable != "off"
    assert _synchronous_commit(app, "idp.statement_engine") == durable
    _, secret = factory.client("portal")
    user = factory.user("kim@example.com")
    checkouts: list[object] = []
    event.listen(app.extensions["idp.grant_engine"], "checkout", lambda *_: checkouts.append(1))
    pkce = Pkce.new()
    code = login_for_code(client, "portal", user.email, pkce)["code"]
    response = exchange(client, "portal", secret, code, pkce)
    assert response.status_code == 200
    assert len(checkouts) == 1
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM grants WHERE user_id = :id"), {"id": user.id}
        ).scalar_one()
    assert count == 1
    userinfo = client.get(
        "/userinfo", headers={"Authorization": "Bearer " + response.get_json()["access_token"]}
    )
    assert userinfo.status_code == 200


def test_durable_new_grants_makes_the_grant_wait_like_every_other_write(
    app, engine, make_app, settings
):  # type: ignore[no-untyped-def]
    durable = make_app(settings.replace(durable_new_grants=True))
    assert _synchronous_commit(durable, "idp.grant_engine") == _synchronous_commit(
        durable, "idp.engine"
    )
    assert _synchronous_commit(durable, "idp.grant_engine") != "off"


def test_the_grant_engine_keeps_the_connection_options_it_was_given(
    engine, database_url, monkeypatch
):  # type: ignore[no-untyped-def]
    """The setting is made on each new connection, not by replacing the
    options of the URL or the environment (PGOPTIONS)."""
    monkeypatch.setenv("PGOPTIONS", "-c application_name=idp-options-test")
    grants = db.make_engine(
        database_url.split("?")[0], single_statements=True, wait_for_flush=False
    )
    try:
        with grants.connect() as connection:
            assert connection.execute(text("SHOW application_name")).scalar_one() == (
                "idp-options-test"
            )
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    finally:
        grants.dispose()
    given = db.make_engine(database_url, single_statements=True, wait_for_flush=False)
    try:
        with given.connect() as connection:  # the URL's search_path, the test's schema
            assert connection.execute(text("SHOW search_path")).scalar_one().startswith("test_")
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    finally:
        given.dispose()
