"""The work each hot endpoint does, counted (not timed): SQL statements and
Redis round trips per request, after the caches are warm. A regression (an
extra query, a per-request key load, an N+1) fails here; the speed itself is
measured by ``make bench``."""

from __future__ import annotations

import base64
import gc
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import event

from idp.db import ENGINES
from idp.services import tokens as tokens_module
from tests.factories import PASSWORD
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import exchange
from tests.flows import form_action
from tests.flows import login_for_code
from tests.flows import query


class Work:
    """Counts SQL statements, with the transactions' BEGIN, COMMIT and
    ROLLBACK, and Redis round trips (a pipeline is one)."""

    def __init__(self, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        self.redis: list[str] = []
        self.later: list[str] = []
        for engine in ENGINES:
            event.listen(app.extensions[engine], "before_cursor_execute", self._statement)
        # (The other engines' statements commit by themselves: they send none.)
        for name in ("begin", "commit", "rollback"):
            event.listen(app.extensions["idp.engine"], name, self._transaction(name.upper()))
        client = app.extensions["idp"].store.redis
        execute_command, pipeline = client.execute_command, client.pipeline

        def counted_command(*args: Any, **kwargs: Any) -> Any:
            self.redis.append(str(args[0]))
            return execute_command(*args, **kwargs)

        def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            def counted_execute(*a: Any, **k: Any) -> Any:
                self.redis.append("PIPELINE")
                return execute(*a, **k)

            pipe.execute = counted_execute
            return pipe

        client.execute_command = counted_command
        client.pipeline = counted_pipeline
        # Commands on the thread's own connection (Store.call, Store.transaction).
        store = app.extensions["idp"].store
        call = store.call

        def counted_call(*command: Any) -> Any:
            self.redis.append(str(command[0]))
            return call(*command)

        monkeypatch.setattr(store, "call", counted_call)
        transaction = store.transaction

        def counted_transaction(*commands: Any) -> Any:
            self.redis.append("MULTI")
            return transaction(*commands)

        monkeypatch.setattr(store, "transaction", counted_transaction)
        # Deletions that ride with the next round trip (not one of their own).
        later = store.later

        def counted_later(*command: Any) -> None:
            self.later.append(str(command[0]))
            later(*command)

        monkeypatch.setattr(store, "later", counted_later)
        # UserInfo's query and the code exchange's statement on PostgreSQL go
        # to psycopg directly, past SQLAlchemy's events: counted here.
        direct = tokens_module._prepared_row

        def counted_direct(connection: Any, sql: str, values: Any) -> Any:
            self.sql.append(sql.split()[0].upper())
            return direct(connection, sql, values)

        monkeypatch.setattr(tokens_module, "_prepared_row", counted_direct)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.sql.append(statement.split()[0].upper())

    def _transaction(self, name: str) -> Any:
        return lambda *_: self.sql.append(name)

    @contextmanager
    def counting(self) -> Iterator[Work]:
        self.sql.clear()
        self.redis.clear()
        self.later.clear()
        yield self


@pytest.fixture
def setup(app, client, factory, monkeypatch):  # type: ignore[no-untyped-def]
    _, secret = factory.client("portal")
    user = factory.user("kim@example.com")
    pkce = Pkce.new()
    code = login_for_code(client, "portal", user.email, pkce)["code"]
    tokens = exchange(client, "portal", secret, code, pkce).get_json()
    basic = {"Authorization": "Basic " + base64.b64encode(f"portal:{secret}".encode()).decode()}
    # Warm the per-process caches (metadata, JWKS, keys, clients) as a running server has them.
    client.get("/.well-known/openid-configuration")
    client.get("/jwks.json")
    client.post("/token", data={"grant_type": "client_credentials"}, headers=basic)
    return Work(app, monkeypatch), tokens, basic


def test_discovery_and_jwks_are_served_from_memory(client, setup):
    work, _, _ = setup
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        with work.counting():
            assert client.get(path).status_code == 200
        assert (work.sql, work.redis) == ([], []), path


def test_client_credentials_token_needs_no_database_and_no_redis(client, setup):
    work, _, basic = setup
    with work.counting():
        response = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic)
    assert response.status_code == 200
    assert (work.sql, work.redis) == ([], [])


def test_userinfo_is_one_query_and_one_redis_round_trip(client, setup):
    work, tokens, _ = setup
    with work.counting():
        response = client.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
    assert response.status_code == 200
    assert (work.sql, work.redis) == (["SELECT"], ["MGET"])


def test_introspection_of_an_access_token_is_one_redis_round_trip(client, setup):
    work, tokens, basic = setup
    with work.counting():
        response = client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic)
    assert response.get_json()["active"] is True
    assert (work.sql, work.redis) == ([], ["MGET"])


def test_authorize_with_a_session_is_two_redis_round_trips(client, setup):
    work, _, _ = setup
    with work.counting():
        response = authorize(client, authorize_params("portal", Pkce.new()))
    assert "code" in query(response.location)
    assert (work.sql, work.redis) == ([], ["GET", "SET"])


def test_code_exchange_and_refresh_stay_small(client, setup):
    work, tokens, basic = setup
    pkce = Pkce.new()
    code = query(authorize(client, authorize_params("portal", pkce)).location)["code"]
    with work.counting():
        response = client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": pkce.verifier,
            },
            headers=basic,
        )
    assert response.status_code == 200
    assert "refresh_token" in response.get_json()  # the scope has offline_access
    if client.application.extensions["idp.statement_engine"].dialect.name == "postgresql":
        # The code read; the grant, its first refresh token and the user's
        # claims in one statement; the code consumed and marked used at once.
        assert work.sql == ["WITH"]
        assert work.redis == ["GET", "MULTI"]
    else:
        # The code's user and its new grant in one transaction, the first
        # refresh token in another; the code consumed and marked used in one
        # Redis transaction, then, after the grant's commit, whether its
        # login ended since (its session, all of its user's sessions) and
        # whether a replay meanwhile revoked its grant, in one MGET.
        assert work.sql == ["BEGIN", "SELECT", "INSERT", "COMMIT", "BEGIN", "INSERT", "COMMIT"]
        assert work.redis == ["MULTI", "MGET"]
    with work.counting():
        response = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic,
        )
    assert response.status_code == 200
    if client.application.extensions["idp.statement_engine"].dialect.name == "postgresql":
        # Spend, add the successor and read the grant: one statement.
        assert work.sql == ["WITH"]
    else:
        assert work.sql == ["BEGIN", "SELECT", "UPDATE", "INSERT", "COMMIT"]
    assert work.redis == []


def test_a_password_and_totp_login_stays_small(app, factory, setup):
    """Each request of a complete login, counted: the flow, the limits and the
    lockout in Redis, the account and its factors in SQL. Four requests: the
    authorization request answers with the e-mail screen, each form with the
    next screen."""
    work, _, _ = setup
    user = factory.user("alex@example.com")
    enrolment = factory.enrol(user, emergency=False)
    browser = app.test_client()
    counted: dict[str, tuple[list[str], list[str]]] = {}
    later: dict[str, list[str]] = {}

    def step(name: str, method: str, url: str, **form: str):  # type: ignore[no-untyped-def]
        with work.counting():
            response = browser.open(url, method=method, data=form or None)
        counted[name] = (list(work.sql), list(work.redis))
        later[name] = list(work.later)
        return response

    page = step(
        "authorize", "GET", "/authorize?" + urlencode(authorize_params("portal", Pkce.new()))
    )
    page = step("e-mail", "POST", form_action(page), email=user.email, csrf_token=csrf_token(page))
    page = step(
        "password", "POST", form_action(page), password=PASSWORD, csrf_token=csrf_token(page)
    )
    answer = step(
        "code", "POST", form_action(page), code=enrolment.totp_code(), csrf_token=csrf_token(page)
    )
    assert answer.location.startswith(REDIRECT_URI)
    assert counted == {
        # The limit per IP address, the new flow; the e-mail screen: a
        # passkey challenge for the browser's autofill.
        "authorize": ([], ["MULTI", "SET", "SET"]),
        # The flow read and moved on; the password screen.
        "e-mail": ([], ["GET", "SET"]),
        # The flow; the limit per IP address; the lock read and the attempt
        # counted; the flow moved on (and the count cleared, in the same round
        # trip); the account and its factors in one statement outside a
        # transaction; the code screen.
        "password": (["SELECT"], ["GET", "MULTI", "MULTI", "SET"]),
        # The flow; the lock read and the attempt counted; the new session
        # with the client it reached (and the count cleared); the code (and
        # the flow ended). The account and its app's secret in one statement,
        # the time step written, the audit row: each committed by itself;
        # then the password read again once the session is written (a reset
        # committed meanwhile ends this login).
        "code": (["SELECT", "UPDATE", "INSERT", "SELECT"], ["GET", "MULTI", "MULTI", "SET"]),
    }
    assert later == {"authorize": [], "e-mail": [], "password": ["DEL"], "code": ["DEL", "DEL"]}


def test_flask_answers_reach_the_server_in_one_piece(app):
    """The WSGI server gets a list with the whole body (sent at once, not
    iterated chunk by chunk), and the app's iterable is closed."""
    closed = []

    def chunks():  # type: ignore[no-untyped-def]
        try:
            yield b"one "
            yield b"two"
        finally:
            closed.append(True)

    app.add_url_rule("/test-chunks", "test_chunks", lambda: app.response_class(chunks()))
    statuses = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/test-chunks",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }
    body = app.wsgi_app(environ, lambda status, headers, *_: statuses.append(status))
    assert statuses == ["200 OK"]
    assert body == [b"one two"]
    assert closed == [True]


def test_a_served_app_leaves_its_start_up_objects_out_of_full_collections(make_app, settings):
    """Outside tests, what create_app made is frozen (gc.freeze): the full
    passes of the garbage collector do not walk it again and again."""
    frozen = gc.get_freeze_count()
    try:
        make_app(settings.replace(env="development"))
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
    make_app(settings)  # a test app: not frozen
    assert gc.get_freeze_count() == 0
