"""What every product under ``clients/`` shares as an OpenID Connect relying
party: configured only through the IdP's discovery document, a client id and
secret and its own URL; login with the authorization code flow and PKCE;
tokens kept on the server side and refreshed when needed (a failed refresh
means logging in again); RP-initiated logout; and a back-channel logout
endpoint that drops the local sessions of the IdP session that ended.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.flask_client import OAuth
from authlib.integrations.flask_client import OAuthError
from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

__all__ = [
    "BACKCHANNEL_EVENT",
    "ConfigError",
    "RelyingParty",
    "SessionStore",
    "display",
    "load_config",
]

SCOPE = "openid profile email phone organization offline_access"
REFRESH_MARGIN = 30
LOGIN_PARAMS = ("prompt", "login_hint", "ui_locales", "max_age")
SETTINGS = ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "URL", "SECRET_KEY", "COOKIE_NAME")
REQUIRED = ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type
SIGNING_ALGORITHMS = ["RS256", "ES256"]
#: How old a logout token may be (its ``iat``), and how long its ``jti`` is remembered.
LOGOUT_TOKEN_MAX_AGE = 300


class ConfigError(RuntimeError):
    """The product lacks the settings it needs to talk to the IdP."""


class SessionStore:
    """Thread-safe login state (ID token claims, tokens, UserInfo) keyed by a
    local session id, with an index by the IdP's session id (``sid``) for
    back-channel logout.

    Entries live in this process's memory only: they vanish on restart and are
    not shared between processes, so run one process or swap in a shared store.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._by_idp_session: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def create(self, entry: dict[str, Any]) -> str:
        """Store a new entry under a fresh random id and return the id."""
        local = secrets.token_urlsafe(32)
        idp_sid = entry.get("id_token", {}).get("sid")
        with self._lock:
            self._entries[local] = dict(entry)
            if idp_sid:
                self._by_idp_session.setdefault(idp_sid, set()).add(local)
        return local

    def get(self, local: str) -> dict[str, Any] | None:
        """Return a copy of the entry, or None if there is none."""
        with self._lock:
            entry = self._entries.get(local)
            return dict(entry) if entry is not None else None

    def update(self, local: str, **values: Any) -> None:
        """Replace some fields of an existing entry."""
        with self._lock:
            if local in self._entries:
                self._entries[local].update(values)

    def delete(self, local: str) -> None:
        """Forget the entry, if any."""
        with self._lock:
            entry = self._entries.pop(local, None)
            idp_sid = entry.get("id_token", {}).get("sid") if entry else None
            if idp_sid:
                self._by_idp_session.get(idp_sid, set()).discard(local)

    def end_idp_session(self, idp_sid: str | None, subject: str | None) -> int:
        """Forget every entry of one IdP session (or, without a sid, of one
        subject); returns how many."""
        with self._lock:
            if idp_sid:
                doomed = self._by_idp_session.pop(idp_sid, set())
            else:
                doomed = {
                    local
                    for local, entry in self._entries.items()
                    if entry.get("id_token", {}).get("sub") == subject
                }
            for local in doomed:
                self._entries.pop(local, None)
        return len(doomed)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines, skipping blanks and ``#`` comments."""
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def load_config(prefix: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Read ``{PREFIX}_*`` settings from the environment, then from the file
    ``{PREFIX}_ENV_FILE`` (default ``instance/{prefix}.env``, written by ``idp demo``)."""
    default_file = f"instance/{prefix.lower()}.env"
    path = Path(os.environ.get(f"{prefix}_ENV_FILE", default_file))
    values = read_env_file(path) if path.is_file() else {}
    values.update({k: v for k, v in os.environ.items() if k.startswith(prefix + "_")})
    names = SETTINGS + extra
    return {key: values[f"{prefix}_{key}"] for key in names if values.get(f"{prefix}_{key}")}


def display(value: Any) -> str:
    """Render a claim value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class RelyingParty:
    """The login machinery of one product, mounted on its Flask app."""

    def __init__(self, app: Flask, settings: dict[str, Any], *, default_url: str, prefix: str):
        missing = [key for key in REQUIRED if not settings.get(key)]
        if missing:
            raise ConfigError(
                f"missing {', '.join(missing)} ({prefix}_* env vars or {prefix}_ENV_FILE, "
                f"default instance/{prefix.lower()}.env); run `idp demo` first"
            )
        settings = dict(settings)
        settings["ISSUER"] = settings["ISSUER"].rstrip("/")
        settings["URL"] = (settings.get("URL") or default_url).rstrip("/")
        settings["SECRET_KEY"] = settings.get("SECRET_KEY") or secrets.token_hex(32)
        app.config.update(
            # Cookies ignore ports: two products on one host need their own names.
            SESSION_COOKIE_NAME=settings.get("COOKIE_NAME") or f"{prefix.lower()}_session",
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=settings["URL"].startswith("https://"),
        )
        app.config.update(settings)
        self.app = app
        self.settings = settings
        self.store = SessionStore()
        self._refresh_lock = threading.Lock()
        self._seen_logout_tokens: dict[str, float] = {}
        self._logout_lock = threading.Lock()
        self.csrf = CSRFProtect(app)
        self.idp = OAuth(app).register(
            "idp",
            server_metadata_url=settings["ISSUER"] + "/.well-known/openid-configuration",
            client_id=settings["CLIENT_ID"],
            client_secret=settings["CLIENT_SECRET"],
            # leeway 0: fresh_token() refreshes; Authlib must not silently rotate the refresh token.
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "leeway": 0},
        )
        app.extensions["rp"] = self
        app.register_blueprint(self._blueprint())

    # -- the logged-in user ------------------------------------------------------------------
    def current(self) -> tuple[str, dict[str, Any]] | None:
        """The local session id and entry of the logged-in user, if any."""
        local = session.get("sid")
        entry = self.store.get(local) if local else None
        if entry is None:
            session.pop("sid", None)
            return None
        return local, entry

    def drop(self) -> None:
        """Log out locally: forget the stored tokens and clear the cookie session."""
        local = session.pop("sid", None)
        if local:
            self.store.delete(local)
        session.clear()

    def fresh_token(self, local: str) -> dict[str, Any]:
        """The access token, refreshed first if it expires within REFRESH_MARGIN s.

        One lock serialises refreshes, so concurrent requests never spend the
        same (single-use, rotating) refresh token twice.
        """
        with self._refresh_lock:
            entry = self.store.get(local)
            if entry is None:
                raise OAuthError(error="login_required")
            token = entry["token"]
            if token.get("expires_at", float("inf")) - time.time() > REFRESH_MARGIN:
                return token
            if not token.get("refresh_token"):
                raise OAuthError(error="login_required", description="no refresh token")
            refresh_token = token["refresh_token"]
            new = dict(
                self.idp.fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token)
            )
            new.setdefault("refresh_token", refresh_token)
            new.setdefault("id_token", token.get("id_token"))
            self.store.update(local, token=new)
            return new

    def user(self) -> dict[str, Any] | None:
        """The user's claims (ID token and fresh UserInfo), or None when not
        logged in or when the grant is gone (then the local session ends too)."""
        found = self.current()
        if found is None:
            return None
        local, entry = found
        try:
            userinfo = dict(self.idp.userinfo(token=self.fresh_token(local)))
        except OAuthError:
            self.drop()
            return None
        except requests.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 401:
                raise
            self.drop()
            return None
        self.store.update(local, userinfo=userinfo)
        return {**entry["id_token"], **userinfo, "_local": local}

    def login_required(self, view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
        """A view for logged-in users only; others are sent to log in."""

        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            user = self.user()
            if user is None:
                return redirect(url_for("rp.login"))
            return view(user, *args, **kwargs)

        wrapped.__name__ = view.__name__
        wrapped.__doc__ = view.__doc__
        return wrapped

    # -- back-channel logout -------------------------------------------------------------------
    def verify_logout_token(self, token: str) -> dict[str, Any]:
        """OpenID Connect Back-Channel Logout 1.0 §2.6: signature, issuer,
        audience, age, the event, ``sid`` or ``sub``, no ``nonce``, no replay.

        :raises ValueError: the token is not a valid logout token for us.
        """
        decoded = None
        for refetch in (False, True):  # the IdP may have rotated its keys since
            try:
                keys = KeySet.import_key_set(self.idp.fetch_jwk_set(force=refetch))
                decoded = jwt.decode(token, keys, algorithms=SIGNING_ALGORITHMS)
                break
            except (JoseError, ValueError, TypeError):
                continue
        if decoded is None:
            raise ValueError("bad signature")
        if decoded.header.get("typ", LOGOUT_TOKEN_TYPE) != LOGOUT_TOKEN_TYPE:
            raise ValueError("not a logout token")
        claims = decoded.claims
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        now = time.time()
        if claims.get("iss") != self.settings["ISSUER"]:
            raise ValueError("wrong issuer")
        if self.settings["CLIENT_ID"] not in audiences:
            raise ValueError("not for us")
        if (
            not isinstance(claims.get("iat"), int)
            or abs(now - claims["iat"]) > LOGOUT_TOKEN_MAX_AGE
        ):
            raise ValueError("too old")
        if "exp" in claims and (not isinstance(claims["exp"], int) or claims["exp"] < now):
            raise ValueError("expired")
        if BACKCHANNEL_EVENT not in (claims.get("events") or {}):
            raise ValueError("not a logout event")
        if not (claims.get("sid") or claims.get("sub")) or "nonce" in claims:
            raise ValueError("malformed")
        jti = str(claims.get("jti") or "")
        with self._logout_lock:
            for old, seen in list(self._seen_logout_tokens.items()):
                if now - seen > LOGOUT_TOKEN_MAX_AGE * 2:
                    del self._seen_logout_tokens[old]
            if not jti or jti in self._seen_logout_tokens:
                raise ValueError("replayed")
            self._seen_logout_tokens[jti] = now
        return dict(claims)

    # -- routes -------------------------------------------------------------------------------
    def _blueprint(self) -> Blueprint:
        bp = Blueprint("rp", __name__)
        rp = self

        @bp.get("/login")
        def login() -> ResponseReturnValue:
            """Send the browser to the IdP's authorization endpoint."""
            extra = {key: request.args[key] for key in LOGIN_PARAMS if request.args.get(key)}
            return rp.idp.authorize_redirect(rp.settings["URL"] + "/auth/callback", **extra)

        @bp.get("/auth/callback")
        def callback() -> ResponseReturnValue:
            """Finish the login: exchange the code, validate the ID token, fetch UserInfo."""
            if "error" in request.args:
                error = request.args["error"]
                description = request.args.get("error_description", "")
                return render_template("error.html", error=error, description=description), 400
            try:
                token = dict(rp.idp.authorize_access_token())
            except (OAuthError, JoseError) as exc:
                description = getattr(exc, "description", "") or ""
                return render_template(
                    "error.html",
                    error=getattr(exc, "error", "invalid_token"),
                    description=description,
                ), 400
            id_token = token.pop("userinfo", None)
            if id_token is None:
                return render_template(
                    "error.html", error="invalid_token", description="Intet ID-token"
                ), 400
            userinfo = dict(rp.idp.userinfo(token=token))
            rp.drop()
            session["sid"] = rp.store.create(
                {"id_token": dict(id_token), "token": token, "userinfo": userinfo}
            )
            return redirect(url_for("index"))

        @bp.post("/logout")
        def logout() -> ResponseReturnValue:
            """Log out here and at the IdP (RP-Initiated Logout), which tells
            the other products; then back to the front page."""
            found = rp.current()
            id_token = found[1]["token"].get("id_token") if found else None
            rp.drop()
            metadata = rp.idp.load_server_metadata()
            end_session = metadata.get("end_session_endpoint")
            if not end_session:
                return redirect(url_for("index"))
            params = {"post_logout_redirect_uri": rp.settings["URL"] + "/"}
            if id_token:
                params["id_token_hint"] = id_token
            else:
                params["client_id"] = rp.settings["CLIENT_ID"]
            return redirect(end_session + "?" + urlencode(params))

        @bp.post("/backchannel-logout")
        @rp.csrf.exempt
        def backchannel_logout() -> ResponseReturnValue:
            """The IdP says a session ended: drop our sessions of it."""
            try:
                claims = rp.verify_logout_token(request.form.get("logout_token", ""))
            except ValueError as error:
                current_app.logger.warning("refused logout token: %s", error)
                return jsonify(error="invalid_request", error_description=str(error)), 400
            rp.store.end_idp_session(claims.get("sid"), claims.get("sub"))
            response = jsonify()
            response.headers["Cache-Control"] = "no-store"
            return response

        @bp.get("/claims.json")
        def claims_json() -> ResponseReturnValue:
            """The ID token and UserInfo claims as JSON (401 if not logged in)."""
            if rp.user() is None:
                return jsonify(error="login_required"), 401
            _, entry = rp.current()  # type: ignore[misc]
            return jsonify(id_token=entry["id_token"], userinfo=entry["userinfo"])

        return bp
