"""A standalone OpenID Connect identity provider."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from idp.config import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _template_folder() -> str:
    """Templates ship inside the wheel as ``idp/templates``; in a source tree
    they are the top-level ``templates/`` folder."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "base.html").exists():
            return str(candidate)
    raise RuntimeError("the idp templates are missing from this installation")


def create_app(config: Settings | Mapping[str, Any] | None = None, **overrides: Any) -> Flask:
    """Build the identity provider.

    :param config: settings, or a mapping of setting names to values. Without
        it, settings are read from ``IDP_*`` environment variables; with it, the
        environment is not read.
    :param overrides: extra objects for tests: ``store`` (an :class:`idp.store.Store`).
    """
    if config is None:
        settings = Settings.from_env()
    elif isinstance(config, Settings):
        settings = config
    else:
        settings = Settings(**config)

    app = Flask(__name__, template_folder=_template_folder(), static_folder=None)
    app.extensions["idp.settings"] = settings
    secret_key = settings.secret_key
    if not secret_key:
        # Development and test only (production refuses to start without one):
        # a per-process key, so browser sessions end when the server restarts.
        secret_key = secrets.token_urlsafe(32)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="idp_browser",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        TESTING=settings.env == "test",
    )
    logging.getLogger("idp").setLevel(settings.log_level)
    # Authlib logs issued tokens at DEBUG; never let that through.
    logging.getLogger("authlib").setLevel(
        max(logging.INFO, logging.getLevelName(settings.log_level))
    )

    from idp import db
    from idp import store
    from idp import web

    db.init_app(app)
    store.init_app(app, overrides.get("store"))
    _build_services(app, settings)
    web.init_app(app)
    return app


def _build_services(app: Flask, settings: Settings) -> None:
    from idp.context import Services
    from idp.oidc.endpoints import IdpIntrospectionEndpoint
    from idp.oidc.endpoints import IdpRevocationEndpoint
    from idp.oidc.server import OpenIDServer
    from idp.services.accounts import Accounts
    from idp.services.clients import ClientRegistry
    from idp.services.consents import Consents
    from idp.services.flows import FlowStore
    from idp.services.keys import KeyRing
    from idp.services.keys import KeyStore
    from idp.services.passwords import Passwords
    from idp.services.sessions import SessionStore
    from idp.services.tokens import Tokens

    sessionmaker = app.extensions["idp.sessionmaker"]
    store = app.extensions["idp.store"]
    keystore = KeyStore(settings.keys_dir, settings.max_token_seconds)
    keyring = KeyRing(keystore)
    clients = ClientRegistry(sessionmaker)
    passwords = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    tokens = Tokens(
        store,
        keyring,
        sessionmaker,
        settings.issuer,
        settings.access_token_seconds,
        settings.refresh_token_seconds,
        settings.authorization_code_seconds,
    )
    server = OpenIDServer(
        clients,
        tokens,
        settings.issuer,
        settings.id_token_seconds,
        pkce_required_for_all=settings.pkce_required == "all",
    )
    server.register_endpoint(IdpRevocationEndpoint(server, tokens))
    server.register_endpoint(IdpIntrospectionEndpoint(server, tokens))
    app.extensions["idp"] = Services(
        settings=settings,
        store=store,
        keystore=keystore,
        keyring=keyring,
        clients=clients,
        accounts=Accounts(sessionmaker, passwords),
        consents=Consents(sessionmaker),
        tokens=tokens,
        flows=FlowStore(store, settings.flow_seconds),
        sessions=SessionStore(
            store, settings.session_idle_seconds, settings.session_absolute_seconds
        ),
        server=server,
    )
