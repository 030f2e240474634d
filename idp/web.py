"""Web plumbing shared by the blueprints: CSRF, language, cookies, headers."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets as std_secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from babel import Locale
from flask import Flask
from flask import Response
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel
from flask_babel import get_locale
from flask_babel import get_translations
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from werkzeug.datastructures import LanguageAccept
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_accept_header
from werkzeug.security import safe_join

from idp.context import services
from idp.services.flows import FlowError
from idp.services.sessions import SsoSession

__all__ = [
    "SSO_COOKIE",
    "browser_id",
    "csrf",
    "current_sso",
    "error_page",
    "init_app",
    "set_sso_cookie",
]

log = logging.getLogger(__name__)

SSO_COOKIE = "idp_session"
LANGUAGE_COOKIE = "idp_lang"
LOCALES = ("da", "en")

csrf = CSRFProtect()


def browser_id() -> str:
    """A random id of this browser, kept in the signed session cookie; flows are
    bound to it so a flow id alone is useless in another browser."""
    if "browser" not in session:
        session["browser"] = std_secrets.token_urlsafe(32)
        session.permanent = False
    return str(session["browser"])


def sso_cookie_name() -> str:
    """``__Host-idp_session`` over https: a ``__Host-`` cookie cannot be planted
    by a sibling subdomain (no login-as-attacker fixation)."""
    return ("__Host-" if services().settings.secure_cookies else "") + SSO_COOKIE


def current_sso() -> SsoSession | None:
    """The browser's live single sign-on session, if any (one Redis read)."""
    if "sso" not in g:
        g.sso = services().sessions.get(request.cookies.get(sso_cookie_name()))
    sso: SsoSession | None = g.sso
    return sso


def set_sso_cookie(response: Response, cookie: str | None) -> Response:
    settings = services().settings
    if cookie is None:
        response.delete_cookie(
            sso_cookie_name(), httponly=True, samesite="Lax", secure=settings.secure_cookies
        )
    else:
        response.set_cookie(
            sso_cookie_name(),
            cookie,
            max_age=settings.session_absolute_seconds,
            httponly=True,
            samesite="Lax",
            secure=settings.secure_cookies,
        )
    return response


def error_page(title: str, message: str, status: int = 400, **context: Any) -> tuple[str, int]:
    return render_template("error.html", title=title, message=message, **context), status


def _first_supported(tags: str) -> str | None:
    for tag in tags.split():
        base = tag.split("-")[0].lower()
        if base in LOCALES:
            return base
    return None


#: Longer Accept-Language headers are parsed every time, not remembered.
REMEMBERED_ACCEPT_LANGUAGE = 200


def _browser_language(accept_language: str) -> str | None:
    """The best of :data:`LOCALES` for an Accept-Language header. Browsers
    send few different ones: each is parsed once (a long one, which no
    browser sends, every time: the memory stays small)."""
    if len(accept_language) > REMEMBERED_ACCEPT_LANGUAGE:
        return _best_language(accept_language)
    return _remembered_language(accept_language)


def _best_language(accept_language: str) -> str | None:
    return parse_accept_header(accept_language, LanguageAccept).best_match(LOCALES)


_remembered_language = functools.lru_cache(maxsize=1024)(_best_language)


@functools.lru_cache(maxsize=16)
def _locale(code: str) -> Locale:
    return Locale.parse(code)


def select_locale() -> Locale:
    """The language of a page: ``ui_locales`` of this request (OIDC Core
    §3.1.2.1), then the language the user picked with the switch, then the
    ``ui_locales`` of the flow's authorization request, then the browser's
    Accept-Language, then the default. (A ``Locale``, made once per language.)"""
    return _locale(
        _first_supported(request.args.get("ui_locales", ""))
        or _first_supported(request.cookies.get(LANGUAGE_COOKIE, ""))
        or _first_supported(g.get("ui_locales") or "")
        or _browser_language(request.headers.get("Accept-Language", ""))
        or services().settings.default_locale
    )


def local_path(target: str) -> str:
    """``target`` if it is a path on this site, else ``/``: never an open
    redirect (no scheme, no host, no ``//``, backslash or control character,
    which browsers may read as a host)."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target)
    ):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def too_many_attempts_page(resets_in: int) -> Response:
    """429 with Retry-After and the time to wait in words."""
    minutes = max(1, (resets_in + 59) // 60)
    body, status = error_page(
        _("Too many attempts"),
        _("Too many attempts. Try again in %(minutes)d minutes.", minutes=minutes),
        429,
    )
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Retry-After"] = str(max(1, resets_in))
    return response


def password_policy_messages(violations: list[Any]) -> list[str]:
    """One sentence per failed password rule, naming the rule."""
    policy = services().password_policy
    texts = {
        "too_short": _("The password must be at least %(n)d characters long.", n=policy.min_length),
        "too_long": _("The password must be at most %(n)d characters long.", n=policy.max_length),
        "no_uppercase": _("The password must contain at least one upper-case letter."),
        "no_special": _(
            "The password must contain at least one special character, such as ! # or &."
        ),
        "common": _("The password is too common: it appears in lists of leaked passwords."),
        "contains_email_name": _("The password must not contain your e-mail address or name."),
    }
    return [texts.get(v.code, v.code) for v in violations]


def security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self'; frame-ancestors 'none'; "
            "form-action 'self' http: https:",
        )
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _page_gettext(translations: Any) -> Any:
    """``_()`` for one page's templates, with Jinja's own new-style rules
    (escaped as the template is, then ``%(name)s`` filled in)."""

    @pass_context
    def gettext(context: Context, string: str, **variables: Any) -> str:
        text = translations.ugettext(string)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 - the catalogue's own text, as Jinja does
        return text % variables  # type: ignore[no-any-return]

    return gettext


#: Seconds a browser keeps a static file fetched by its versioned address.
STATIC_MAX_AGE = 365 * 24 * 3600


class IdpFlask(Flask):
    """Flask, with the scripts and stylesheets cached by browsers: their
    addresses carry a digest of their content (``?v=``, added to every
    ``url_for('static', …)``), and a file asked for by its current digest is
    kept for a year, so a page does not make the browser ask for them again;
    another version is fetched by its own new address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The digests of the static files, each read once per process.
        self.static_versions: dict[str, str] = {}
        self.url_defaults(self._version_static_urls)

    def static_version(self, filename: str) -> str | None:
        """The first 12 hex digits of the SHA-256 of a static file; ``None``
        for a name that is not one (not remembered: any request may ask)."""
        version = self.static_versions.get(filename)
        if version is None:
            path = safe_join(self.static_folder or "", filename)
            if path is None or not os.path.isfile(path):
                return None
            version = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
            self.static_versions[filename] = version
        return version

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        asked = request.args.get("v")
        if filename and asked and asked == self.static_version(filename):
            return STATIC_MAX_AGE
        return None  # asked again (with If-Modified-Since) whenever used

    def _version_static_urls(self, endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values:
            version = self.static_version(values["filename"])
            if version:
                values.setdefault("v", version)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session (the browser id, the CSRF secret), its
    serializer made once (Flask makes one for every request, to open the
    cookie, and another to save it). The secret key comes from the settings
    and does not change while the app runs: a new one takes a restart."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        made = app.extensions.get("idp.cookie_serializer")
        if made is None:
            made = app.extensions["idp.cookie_serializer"] = super().get_signing_serializer(app)
        return made


def init_app(app: Flask) -> None:
    from idp.oidc.views import bp as oidc_bp
    from idp.oidc.views import restart_page
    from idp.views.activation import bp as activation_bp
    from idp.views.admin import bp as admin_bp
    from idp.views.consent import bp as consent_bp
    from idp.views.dev import bp as dev_bp
    from idp.views.login import bp as login_bp
    from idp.views.logout import bp as logout_bp

    app.session_interface = CookieSessions()
    csrf.init_app(app)
    babel_dir = str(app.root_path) + "/translations"
    Babel(app, locale_selector=select_locale, default_translation_directories=babel_dir)
    app.register_blueprint(oidc_bp)
    app.register_blueprint(login_bp)
    app.register_blueprint(logout_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(consent_bp)
    app.register_blueprint(activation_bp)
    if app.extensions["idp.settings"].env in ("development", "test"):
        app.register_blueprint(dev_bp)
    app.after_request(security_headers)

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        # The locale and its translations are looked up once per page (the
        # one in force then: an e-mail under force_locale gets its own), not
        # at every string: flask_babel's lookup costs sixty times the
        # translation itself, and was a fifth of a login page's rendering.
        locale = get_locale()
        return {
            "get_locale": lambda: locale,
            "gettext": _page_gettext(get_translations()),
            "brand_name": services().settings.brand_name,
        }

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> tuple[str, int]:
        return error_page(
            _("The page expired"),
            _("The form was too old or came from another page. Go back and try again."),
        )

    @app.errorhandler(FlowError)
    def _flow_ended(error: FlowError) -> Any:
        # A flow that ends while a step is answered (its time ran out between
        # loading and saving it): start again, as when it was loaded.
        return restart_page()

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _store_down(error: Exception) -> Any:
        # Sessions, flows and rate limits live in Redis: without it nothing is
        # let through (fail closed), and the user is told to come back.
        log.error("redis unavailable: %s", type(error).__name__)
        body, status = error_page(
            _("The login service is temporarily unavailable"),
            _("Please try again in a few minutes."),
            503,
        )
        response = Response(body, status=status, mimetype="text/html")
        response.headers["Retry-After"] = "30"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        if request.accept_mimetypes.best == "application/json" or request.path.startswith(
            ("/token", "/userinfo", "/revoke", "/introspect", "/.well-known", "/jwks")
        ):
            return {"error": "invalid_request", "error_description": error.description}, error.code
        return error_page(error.name, error.description or "", error.code or 500)

    @app.get("/language/<code>")
    def language(code: str) -> Response:
        """The language switch: remember the choice and go back to the page."""
        response = redirect(local_path(request.args.get("next", "/")))
        if code in LOCALES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                code,
                max_age=365 * 24 * 3600,
                httponly=True,
                samesite="Lax",
                secure=services().settings.secure_cookies,
            )
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    def index() -> Any:
        return render_template("index.html")
