"""Shared fixtures.

The same tests run on SQLite + fakeredis (the default) and on PostgreSQL +
Redis when ``IDP_TEST_DATABASE_URL`` / ``IDP_TEST_REDIS_URL`` are set. Each
pytest worker gets its own database schema; each test its own Redis key prefix,
and its rows are deleted after it.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy import text
from werkzeug.serving import make_server

from clients.academy.app import create_app as create_academy
from clients.portal.app import create_app as create_portal
from idp import create_app
from idp import db
from idp.config import Settings
from idp.db import make_engine
from idp.migrations import upgrade
from idp.models import Base
from idp.services.keys import KeyStore
from idp.store import Store
from tests.factories import Factory

TEST_DATABASE_URL = os.environ.get("IDP_TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "")


@pytest.fixture(autouse=True)
def _reset_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``IDP_*`` variable of the shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("IDP_", "PORTAL_")):
            monkeypatch.delenv(name)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this worker."""
    if not TEST_DATABASE_URL:
        path = tmp_path_factory.mktemp("db") / "idp.sqlite3"
        url = f"sqlite:///{path}"
        upgrade(make_engine(url))
        yield url
        return
    base = Settings(database_url=TEST_DATABASE_URL).sqlalchemy_url
    schema = f"test_{_worker()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def keys_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys-template")
    KeyStore(directory, 600).generate()
    return directory


@pytest.fixture
def keys_dir(tmp_path: Path, keys_template: Path) -> Path:
    """This test's own copy of the signing keys (rotation tests change them)."""
    directory = tmp_path / "keys"
    shutil.copytree(keys_template, directory)
    return directory


@pytest.fixture
def store() -> Iterator[Store]:
    prefix = f"test:{uuid.uuid4().hex}:"
    if not TEST_REDIS_URL:
        yield Store(fakeredis.FakeRedis(), prefix)
        return
    client = redis.Redis.from_url(TEST_REDIS_URL)
    store = Store(client, prefix)
    yield store
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    store.close()


def make_settings(
    database_url: str, keys_dir: Path, issuer: str = "http://localhost", **changes: object
) -> Settings:
    settings = Settings(
        env="test",
        issuer=issuer,
        secret_key="test-secret-key-" + "x" * 32,
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        keys_dir=str(keys_dir),
        argon2_time_cost=1,
        argon2_memory_kib=8,
        argon2_parallelism=1,
    )
    return settings.replace(**changes)


@pytest.fixture
def settings(database_url: str, keys_dir: Path) -> Settings:
    return make_settings(database_url, keys_dir)


@pytest.fixture
def app(settings: Settings, store: Store) -> Iterator:
    app = create_app(settings, store=store)
    yield app
    app.extensions["idp"].background.stop()
    engine = app.extensions["idp.engine"]
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    db.dispose(app)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def factory(app) -> Factory:  # type: ignore[no-untyped-def]
    return Factory(app)


class _Dispatcher:
    """A WSGI app that is set after the server has its port (the issuer needs it)."""

    app = None
    #: While False the server answers 503, as a product that is down.
    up = True

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if not self.up:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down"]
        return self.app(environ, start_response)


@pytest.fixture
def live_server(database_url: str, keys_dir: Path, store: Store) -> Iterator:
    """The IdP on ``http://localhost:PORT`` in a thread; yields the app with
    ``app.base_url`` set."""
    dispatcher = _Dispatcher()
    server = make_server("localhost", 0, dispatcher, threaded=True)
    base_url = f"http://localhost:{server.port}"
    # Back-channel logouts that fail are retried after a second, not ten.
    settings = make_settings(database_url, keys_dir, issuer=base_url, logout_retry_seconds=1)
    app = create_app(settings, store=store)
    app.base_url = base_url  # type: ignore[attr-defined]
    dispatcher.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app
    app.extensions["idp"].background.stop()
    server.shutdown()
    thread.join()
    engine = app.extensions["idp.engine"]
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    db.dispose(app)


@pytest.fixture
def portal(live_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The customer portal on its own port, registered with the live IdP as
    ``portal``; yields its base URL."""
    yield from _serve_product(live_server, create_portal, "portal", "Customer Portal")


@pytest.fixture
def academy(live_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The second product, Akademiet, for single sign-on and logout everywhere."""
    yield from _serve_product(live_server, create_academy, "academy", "Akademiet")


def _serve_product(live_server, create, client_id: str, display_name: str) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Serve a product under ``clients/`` on its own port, registered with the
    live IdP (back-channel logout included); yields its base URL."""
    dispatcher = _Dispatcher()
    server = make_server("localhost", 0, dispatcher, threaded=True)
    url = f"http://localhost:{server.port}"
    _, secret = Factory(live_server).client(
        client_id,
        display_name=display_name,
        redirect_uris=[url + "/auth/callback"],
        post_logout_redirect_uris=[url + "/"],
        backchannel_logout_uri=url + "/backchannel-logout",
        initiate_login_uri=url + "/login",
        scopes=["openid", "profile", "email", "phone", "organization", "offline_access"],
        grant_types=["authorization_code", "refresh_token"],
    )
    dispatcher.app = create(
        {
            "ISSUER": live_server.base_url,
            "CLIENT_ID": client_id,
            "COOKIE_NAME": f"{client_id}_session",
            "CLIENT_SECRET": secret,
            "URL": url,
            "CASES_DB": ":memory:",
        }
    )
    live_server.extensions.setdefault("test_products", {})[client_id] = dispatcher
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def make_app(store: Store) -> Iterator:  # type: ignore[type-arg]
    """Build extra apps with changed settings; their connections are closed after the test."""
    apps = []

    def make(settings: Settings, **overrides: object):  # type: ignore[no-untyped-def]
        overrides.setdefault("store", store)
        app = create_app(settings, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["idp"].background.stop()
        db.dispose(app)
