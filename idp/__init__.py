"""A standalone OpenID Connect identity provider."""

from __future__ import annotations

import gc
import logging
import os
import secrets
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from idp.config import Settings
from idp.documents import StaticDocuments
from idp.oidc.shortcuts import Shortcuts
from idp.web import IdpFlask

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: Largest request body accepted: forms and token requests are small.
MAX_REQUEST_BYTES = 64 * 1024


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

    app = IdpFlask(__name__, template_folder=_template_folder(), static_folder="static")
    app.extensions["idp.settings"] = settings
    secret_key = settings.secret_key or _development_secret_key()
    app.config.update(
        SECRET_KEY=secret_key,
        # __Host- cookies cannot be set by a sibling subdomain (needs https).
        SESSION_COOKIE_NAME=("__Host-" if settings.secure_cookies else "") + "idp_browser",
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
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
    app.wsgi_app = _whole_body(app.wsgi_app)  # type: ignore[method-assign]
    # Discovery, JWKS and the plain requests of the hottest endpoints are
    # answered before Flask.
    app.wsgi_app = Shortcuts(app, app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = StaticDocuments(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        # Behind a TLS-terminating load balancer: believe its X-Forwarded-*
        # headers (scheme, host, client address), and only those of that many
        # hops; outermost, so the shortcuts see the request as Flask does.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    if settings.env != "test":
        # What start-up made (modules, the app, its mappers and services:
        # some 140,000 objects) lives as long as the process. Frozen, it is
        # left out of the garbage collector's full passes, which otherwise
        # walk all of it every few hundred requests (90 ms each, measured).
        # Not in tests, which build many apps and drop them.
        gc.freeze()
    return app


def _whole_body(wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """Flask's answers as one piece (no answer here is streamed): the server
    sends a list at once, where it iterates anything else chunk by chunk
    holding the GIL (granian; 82.6 → 86.0 logins a second, measured)."""

    def whole(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = wsgi_app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return whole


def _development_secret_key() -> str:
    """Without ``IDP_SECRET_KEY`` (development and test only: production refuses
    to start), a random key kept in ``instance/secret_key``, so sessions and the
    TOTP secrets encrypted with a key derived from it survive a restart."""
    path = Path.cwd() / "instance" / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def _build_services(app: Flask, settings: Settings) -> None:
    from idp.background import Background
    from idp.context import Services
    from idp.oidc.endpoints import IdpIntrospectionEndpoint
    from idp.oidc.endpoints import IdpRevocationEndpoint
    from idp.oidc.server import OpenIDServer
    from idp.services.accounts import Accounts
    from idp.services.actions import ActionTokens
    from idp.services.audit import Audit
    from idp.services.clients import ClientRegistry
    from idp.services.consents import Consents
    from idp.services.crypto import SecretBox
    from idp.services.crypto import derive_key
    from idp.services.factors import Factors
    from idp.services.flows import FlowStore
    from idp.services.keys import KeyRing
    from idp.services.keys import KeyStore
    from idp.services.lockout import Lockout
    from idp.services.logout import Logout
    from idp.services.mail import build_mailer
    from idp.services.passkeys import Passkeys
    from idp.services.password_policy import PasswordPolicy
    from idp.services.passwords import Passwords
    from idp.services.ratelimit import RateLimiter
    from idp.services.sessions import SessionStore
    from idp.services.sms import SmsChallenges
    from idp.services.sms import build_sms_sender
    from idp.services.tokens import Tokens

    sessionmaker = app.extensions["idp.sessionmaker"]
    store = app.extensions["idp.store"]
    keystore = KeyStore(settings.keys_dir, settings.max_token_seconds)
    keyring = KeyRing(keystore)
    clients = ClientRegistry(sessionmaker)
    passwords = Passwords(
        settings.argon2_time_cost,
        settings.argon2_memory_kib,
        settings.argon2_parallelism,
        settings.argon2_concurrency,
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
    secret_box = SecretBox(settings.encryption_key or derive_key(app.config["SECRET_KEY"]))
    limiter = RateLimiter(store)
    sms_sender = build_sms_sender(settings.sms_url, settings.sms_token, store)
    server.register_endpoint(IdpRevocationEndpoint(server, tokens))
    server.register_endpoint(IdpIntrospectionEndpoint(server, tokens))
    sessions = SessionStore(
        store,
        settings.session_idle_seconds,
        settings.session_absolute_seconds,
        code_seconds=settings.authorization_code_seconds,
    )
    audit = Audit()
    background = Background(app)
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
        sessions=sessions,
        server=server,
        actions=ActionTokens(settings.action_link_seconds),
        factors=Factors(secret_box),
        secret_box=secret_box,
        password_policy=PasswordPolicy(
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
            require_uppercase=settings.password_require_uppercase,
            require_special=settings.password_require_special,
        ),
        mailer=build_mailer(settings.smtp_url, store),
        sms_sender=sms_sender,
        sms=SmsChallenges(store, sms_sender, limiter),
        limiter=limiter,
        lockout=Lockout(
            store,
            max_failures=settings.lockout_failures,
            base_lock_seconds=settings.lockout_seconds,
        ),
        audit=audit,
        background=background,
        passkeys=Passkeys(
            store,
            settings.rp_id,
            settings.brand_name,
            settings.webauthn_allowed_origins,
            settings.webauthn_attestation,
        ),
        logout=Logout(
            sessions=sessions,
            tokens=tokens,
            clients=clients,
            keyring=keyring,
            audit=audit,
            background=background,
            issuer=settings.issuer,
            retry_seconds=settings.logout_retry_seconds,
            attempts=settings.logout_attempts,
        ),
    )
    if settings.env != "test":
        # Retries of back-channel logouts (tests start it at their first logout).
        services_ = app.extensions["idp"]
        background.every(settings.logout_retry_seconds, services_.logout.deliver_due)
