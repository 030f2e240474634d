"""The customer portal: logs users in through the IdP and shows their claims."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.flask_client import OAuth
from authlib.integrations.flask_client import OAuthError
from flask import Flask
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

SCOPE = "openid profile email phone organization offline_access"
DEFAULT_URL = "http://localhost:5001"
REFRESH_MARGIN = 30
LOGIN_PARAMS = ("prompt", "login_hint", "ui_locales", "max_age")
SETTINGS = ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "URL", "SECRET_KEY", "COOKIE_NAME")
REQUIRED = ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")


class ConfigError(RuntimeError):
    """The portal lacks the settings it needs to talk to the IdP."""


class SessionStore:
    """Thread-safe login state (ID token claims, tokens, UserInfo) keyed by session id.

    Entries live in this process's memory only: they vanish on restart and are
    not shared between processes, so run one process or swap in a shared store.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create(self, entry: dict[str, Any]) -> str:
        """Store a new entry under a fresh random id and return the id."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._entries[sid] = dict(entry)
        return sid

    def get(self, sid: str) -> dict[str, Any] | None:
        """Return a copy of the entry, or None if there is none."""
        with self._lock:
            entry = self._entries.get(sid)
            return dict(entry) if entry is not None else None

    def update(self, sid: str, **values: Any) -> None:
        """Replace some fields of an existing entry."""
        with self._lock:
            if sid in self._entries:
                self._entries[sid].update(values)

    def delete(self, sid: str) -> None:
        """Forget the entry, if any."""
        with self._lock:
            self._entries.pop(sid, None)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines, skipping blanks and ``#`` comments."""
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def load_config() -> dict[str, str]:
    """Read PORTAL_* settings from the environment, then from PORTAL_ENV_FILE."""
    path = Path(os.environ.get("PORTAL_ENV_FILE", "instance/portal.env"))
    values = read_env_file(path) if path.is_file() else {}
    values.update({k: v for k, v in os.environ.items() if k.startswith("PORTAL_")})
    return {key: values[f"PORTAL_{key}"] for key in SETTINGS if values.get(f"PORTAL_{key}")}


def display(value: Any) -> str:
    """Render a claim value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the portal app from ``config``, or from PORTAL_* settings if None."""
    settings = dict(load_config() if config is None else config)
    missing = [key for key in REQUIRED if not settings.get(key)]
    if missing:
        raise ConfigError(
            f"missing {', '.join(missing)} (PORTAL_* env vars or PORTAL_ENV_FILE, "
            "default instance/portal.env); run `idp demo` first"
        )
    settings["ISSUER"] = settings["ISSUER"].rstrip("/")
    settings["URL"] = (settings.get("URL") or DEFAULT_URL).rstrip("/")
    settings["SECRET_KEY"] = settings.get("SECRET_KEY") or secrets.token_hex(32)

    app = Flask(__name__, template_folder="templates")
    app.config.update(
        # Cookies ignore ports: two products on one host need their own names.
        SESSION_COOKIE_NAME=settings.get("COOKIE_NAME") or "portal_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["URL"].startswith("https://"),
    )
    app.config.update(settings)
    store = SessionStore()
    app.extensions["portal_store"] = store
    refresh_lock = threading.Lock()

    oauth = OAuth(app)
    idp = oauth.register(
        "idp",
        server_metadata_url=settings["ISSUER"] + "/.well-known/openid-configuration",
        client_id=settings["CLIENT_ID"],
        client_secret=settings["CLIENT_SECRET"],
        # leeway 0: fresh_token() refreshes; Authlib must not silently rotate the refresh token.
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "leeway": 0},
    )

    def current() -> tuple[str, dict[str, Any]] | None:
        """Return the logged-in session's id and entry, if any."""
        sid = session.get("sid")
        entry = store.get(sid) if sid else None
        if entry is None:
            session.pop("sid", None)
            return None
        return sid, entry

    def drop() -> None:
        """Log out locally: forget the stored tokens and clear the cookie session."""
        sid = session.pop("sid", None)
        if sid:
            store.delete(sid)
        session.clear()

    def fresh_token(sid: str) -> dict[str, Any]:
        """Return the access token, refreshed first if it expires within REFRESH_MARGIN s.

        One lock serialises refreshes, so concurrent requests never spend the same
        (single-use, rotating) refresh token twice.
        """
        with refresh_lock:
            entry = store.get(sid)
            if entry is None:
                raise OAuthError(error="login_required")
            token = entry["token"]
            if token.get("expires_at", float("inf")) - time.time() > REFRESH_MARGIN:
                return token
            if not token.get("refresh_token"):
                raise OAuthError(error="login_required", description="no refresh token")
            refresh_token = token["refresh_token"]
            new = dict(
                idp.fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token)
            )
            new.setdefault("refresh_token", refresh_token)
            store.update(sid, token=new)
            return new

    def sync() -> dict[str, Any] | None:
        """Re-fetch UserInfo with a fresh token; on a dead grant, log out and return None."""
        found = current()
        if found is None:
            return None
        sid, entry = found
        try:
            userinfo = dict(idp.userinfo(token=fresh_token(sid)))
        except OAuthError:
            drop()
            return None
        except requests.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 401:
                raise
            drop()
            return None
        store.update(sid, userinfo=userinfo)
        return {**entry, "userinfo": userinfo}

    @app.get("/")
    def index() -> ResponseReturnValue:
        """Show the user's claims, or a login link."""
        if session.get("sid") is None:
            return render_template("index.html", user=None)
        entry = sync()
        if entry is None:
            return redirect(url_for("login"))
        claims = {**entry["id_token"], **entry["userinfo"]}
        name = (
            claims.get("given_name") or claims.get("name") or claims.get("email") or claims["sub"]
        )
        rows = [(key, display(value)) for key, value in sorted(claims.items())]
        return render_template("index.html", user=name, rows=rows)

    @app.get("/login")
    def login() -> ResponseReturnValue:
        """Send the browser to the IdP's authorization endpoint."""
        extra = {key: request.args[key] for key in LOGIN_PARAMS if request.args.get(key)}
        return idp.authorize_redirect(app.config["URL"] + "/auth/callback", **extra)

    @app.get("/auth/callback")
    def callback() -> ResponseReturnValue:
        """Finish the login: exchange the code, validate the ID token, fetch UserInfo."""
        if "error" in request.args:
            error, description = request.args["error"], request.args.get("error_description", "")
            return render_template("error.html", error=error, description=description), 400
        try:
            token = dict(idp.authorize_access_token())
        except (OAuthError, JoseError) as exc:
            return render_template(
                "error.html", error=exc.error, description=exc.description or ""
            ), 400
        id_token = token.pop("userinfo", None)
        if id_token is None:
            return render_template(
                "error.html", error="invalid_token", description="Intet ID-token"
            ), 400
        userinfo = dict(idp.userinfo(token=token))
        drop()
        session["sid"] = store.create(
            {"id_token": dict(id_token), "token": token, "userinfo": userinfo}
        )
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        """Forget the local login and go back to the front page."""
        drop()
        return redirect(url_for("index"))

    @app.get("/claims.json")
    def claims_json() -> ResponseReturnValue:
        """Return the ID token and UserInfo claims as JSON (401 if not logged in)."""
        entry = sync()
        if entry is None:
            return jsonify(error="login_required"), 401
        return jsonify(id_token=entry["id_token"], userinfo=entry["userinfo"])

    return app
