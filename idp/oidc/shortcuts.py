"""The common, valid requests of the hottest endpoints, answered without the
Flask request cycle.

Services asking for ``client_credentials`` tokens, products reading UserInfo
and resource servers introspecting access tokens are the calls an identity
provider gets most, and most of their cost here was the framework around a
signature, one Redis round trip and one query. :class:`Shortcuts` answers them
straight from WSGI when the request is the plain, valid case:

* ``POST /token``, ``grant_type=client_credentials``: a form body with each
  parameter once, the client authenticated by ``client_secret_basic`` or
  ``client_secret_post`` and allowed the grant, only known scopes;
* ``POST /token``, ``grant_type=refresh_token`` (PostgreSQL): the grant's
  scope, the rotation, its checks and the successor in one statement;
* ``POST /token``, ``grant_type=authorization_code`` (PostgreSQL): a live code
  of the authenticated (or public) client, for its redirect URI, with a PKCE
  S256 verifier that matches, checked before the code is spent; the grant, its
  first refresh token and the user's claims in one statement, then the code
  consumed and marked used in one atomic step;
* ``GET /userinfo`` with a bearer header carrying a live access token with the
  ``openid`` scope of an active user's live grant;
* ``POST /introspect`` of one of the client's own live access tokens;
* ``GET /authorize`` from a browser with a live SSO session, for a first-party
  client, with only the plain parameters (no ``prompt``, ``max_age``, hints or
  ``claims``): validated and answered with a code by the full endpoint's own
  functions.

The answer is the one the full endpoint gives: the same functions make the
token, the claims and the introspection, with the same headers.

Anything else (an error of any kind, another grant type, a refresh or code
exchange on SQLite,
an unusual request) goes on to the full endpoint untouched, which answers it as
always; so a shortcut never has to produce an error, and cannot produce one
that differs. (The exception comes after a refresh token or a code was spent,
when the full path would take the request for a replay: a failure then is a
server error answered here.)
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import unquote

from authlib.common.security import is_secure_transport
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from flask import Flask
from flask import Response
from werkzeug.http import parse_cookie

from idp.db import get_session
from idp.oidc.endpoints import access_token_introspection
from idp.oidc.server import Principal
from idp.oidc.views import MAX_PARAMETER_LENGTH
from idp.oidc.views import PLAIN_PARAMETERS
from idp.oidc.views import issue_code
from idp.oidc.views import validate_authorization
from idp.services.claims import user_claims
from idp.services.clients import SCOPES
from idp.services.clients import RegisteredClient
from idp.services.secrets import new_secret
from idp.services.tokens import InvalidTokenError
from idp.services.tokens import new_grant_id
from idp.web import security_headers
from idp.web import sso_cookie_name

__all__ = ["Shortcuts"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
#: Longer bodies are not the plain case; the full endpoint takes them.
MAX_BODY_BYTES = 4096
#: The parameters a plain request may carry, per endpoint.
TOKEN_PARAMETERS = frozenset(("grant_type", "scope", "client_id", "client_secret"))
REFRESH_PARAMETERS = frozenset(("grant_type", "refresh_token", "client_id", "client_secret"))
CODE_PARAMETERS = frozenset(
    ("grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret")
)
INTROSPECTION_PARAMETERS = frozenset(("token", "token_type_hint", "client_id", "client_secret"))
AUTHORIZE_PARAMETERS = frozenset(PLAIN_PARAMETERS)
COMMON_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
#: RFC 6749 §5.1 (token), and the same for introspection, as the full endpoints send them.
OAUTH_HEADERS = [*COMMON_HEADERS, ("Pragma", "no-cache")]
KNOWN_SCOPES = frozenset(SCOPES)
#: How many (scheme, host) pairs' transport answers a worker remembers.
SECURE_TRANSPORTS_REMEMBERED = 64


class Shortcuts:
    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any]], bytes | Response | None]] = {
            ("POST", "/token"): self._token,
            ("GET", "/userinfo"): self._userinfo,
            ("POST", "/introspect"): self._introspection,
            ("GET", "/authorize"): self._authorize,
        }
        # Whether a scheme and host are a secure transport, as Authlib judges
        # it (a URL parsed, an address parsed): the same few answers for
        # every request, so each is worked out once. Hosts come from clients,
        # so the memory has a bound.
        self._secure_transports: dict[tuple[str, str], bool] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        handler = self.routes.get((method, path))
        if (
            handler is None
            # Parameters in a POST's query string count for the full endpoints.
            or (method == "POST" and environ.get("QUERY_STRING"))
            # Authlib refuses plain HTTP other than to loopback (insecure_transport).
            or not self._secure(environ)
        ):
            return self.wsgi_app(environ, start_response)
        try:
            answer = handler(environ)
        except Exception:  # the full endpoint will meet the same fault and answer it
            log.exception("shortcut for %s failed; the full endpoint answers", path)
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        if isinstance(answer, Response):
            return answer(environ, start_response)
        headers = COMMON_HEADERS if path == "/userinfo" else OAUTH_HEADERS
        start_response("200 OK", [*headers, ("Content-Length", str(len(answer)))])
        return [answer]

    def _secure(self, environ: dict[str, Any]) -> bool:
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        known = self._secure_transports.get((scheme, host))
        if known is None:
            known = is_secure_transport(f"{scheme}://{host}/")
            if len(self._secure_transports) < SECURE_TRANSPORTS_REMEMBERED:
                self._secure_transports[scheme, host] = known
        return known

    @property
    def services(self) -> Any:
        return self.app.extensions["idp"]

    # -- the endpoints ------------------------------------------------------------------------
    def _token(self, environ: dict[str, Any]) -> bytes | None:
        params = _form(environ, TOKEN_PARAMETERS | REFRESH_PARAMETERS | CODE_PARAMETERS)
        if params is None:
            return None
        if params.get("grant_type") == "authorization_code" and params.keys() <= CODE_PARAMETERS:
            return self._code_exchange(environ, params)
        if params.get("grant_type") == "client_credentials" and params.keys() <= TOKEN_PARAMETERS:
            return self._client_credentials(environ, params)
        if params.get("grant_type") == "refresh_token" and params.keys() <= REFRESH_PARAMETERS:
            return self._refresh(environ, params)
        return None

    def _client_credentials(self, environ: dict[str, Any], params: dict[str, str]) -> bytes | None:
        client = self._authenticate(environ, params)
        if client is None or "client_credentials" not in client.grant_types:
            return None
        scope = params.get("scope")
        if scope is not None and not set(scope.split()) <= KNOWN_SCOPES:
            return None  # invalid_scope, from the full endpoint
        token = self.services.server.generate_bearer_token(
            "client_credentials", client, scope=scope, include_refresh_token=False
        )
        return json.dumps(token).encode()

    def _code_exchange(
        self, environ: dict[str, Any], params: dict[str, str]
    ) -> bytes | Response | None:
        """A code exchanged with PKCE (S256) by the client it was issued to, for
        the redirect URI it was issued for (PostgreSQL).

        Every check is made on the code as stored, before it is spent. Then the
        grant, its first refresh token and the user's claims are one statement
        (nothing is recorded for a user disabled meanwhile, who is left to the
        full path), and only then is the code consumed and marked used by that
        grant, atomically: a replay at any later moment finds the grant to end.
        If another exchange took the code between the check and the
        consumption, the grant made here is withdrawn and the request goes to
        the full path, which sees the replay. Once the code is spent there is
        no going back to the full path.
        """
        engine = self.app.extensions["idp.grant_engine"]
        code, verifier = params.get("code"), params.get("code_verifier")
        if engine.dialect.name != "postgresql" or not code or not verifier:
            return None
        client = self._authenticate(environ, params, allow_public=True)
        if client is None or "authorization_code" not in client.grant_types:
            return None
        tokens = self.services.tokens
        data = tokens.peek_code(code)
        if (
            data is None
            or data.client_id != client.client_id
            or data.redirect_uri != params.get("redirect_uri")
            or data.code_challenge_method != "S256"
            or not data.code_challenge
            or not CODE_VERIFIER_PATTERN.match(verifier)
            or not compare_s256_code_challenge(verifier, data.code_challenge)
        ):
            return None
        server = self.services.server
        scope = client.get_allowed_scope(data.scope)
        scopes = scope.split()
        with_refresh_token = "refresh_token" in client.grant_types and "offline_access" in scopes
        tokens.keyring.signer(client.signing_alg)  # no signing key: fail before spending
        grant_id = new_grant_id()
        refresh_token = new_secret() if with_refresh_token else None
        # A failure from here to the claim leaves at most a grant no token was
        # issued for, and the code unspent for the full path. The grant's
        # commit need not wait for the disk (idp.db.init_app).
        connection = engine.raw_connection()
        try:
            user = tokens.create_grant_in_one_statement(
                connection.driver_connection, grant_id, data, refresh_token
            )
        finally:
            connection.close()  # back to the pool
        if user is None:
            return None  # the user is gone or disabled: the full endpoint says so
        try:
            claimed = tokens.claim_code(code, grant_id, data, user.subject)
        except Exception:
            # Spent or not, nobody can tell: the full path could take it for a
            # replay. The grant goes (no token was issued for it).
            log.exception("consuming a code failed")
            self._withdraw(grant_id)
            return _server_error()
        if not claimed:
            self._withdraw(grant_id)
            # Taken by another exchange, or its login ended: the full path
            # sees a replay (the code is marked used by the grant withdrawn).
            return None
        try:
            principal = Principal(
                user=user,  # type: ignore[arg-type] # has the subject and the claims' columns
                grant_id=grant_id,
                session_id=data.session_id,
                auth_time=data.auth_time,
                acr=data.acr,
                amr=data.amr,
            )
            token = server.generate_bearer_token(
                "authorization_code", client, user=principal, scope=scope,
                include_refresh_token=False,
            )  # fmt: skip
            if refresh_token is not None:
                token["refresh_token"] = refresh_token
            if "openid" in scopes:
                token["id_token"] = server.id_token(
                    client, data, user_claims(user, scopes), token["access_token"]
                )
            return json.dumps(token).encode()
        except Exception:
            log.exception("code exchange failed after the code was spent")
            self._withdraw(grant_id)
            return _server_error()

    def _withdraw(self, grant_id: str) -> None:
        """End a grant no token was issued for, as far as possible."""
        try:
            with self.app.app_context():
                self.services.tokens.revoke_grant(get_session(), grant_id)
        except Exception:
            log.exception("withdrawing grant %s failed", grant_id)

    def _refresh(self, environ: dict[str, Any], params: dict[str, str]) -> bytes | Response | None:
        """Rotation and the new access token, with the grant's scope (a request
        narrowing the scope takes the full path).

        Once the token is spent there is no going back to the full path (it
        would take the spent token for a replay and end the grant): a failure
        after the rotation is answered here, as a server error.
        """
        engine = self.app.extensions["idp.statement_engine"]
        if engine.dialect.name != "postgresql" or not params.get("refresh_token"):
            return None
        client = self._authenticate(environ, params)
        if client is None or "refresh_token" not in client.grant_types:
            return None
        tokens = self.services.tokens
        tokens.keyring.signer(client.signing_alg)  # no signing key: fail before spending
        connection = engine.raw_connection()
        try:
            rotated = tokens.rotate_in_one_statement(
                connection.driver_connection, params["refresh_token"], client.client_id
            )
        finally:
            connection.close()  # back to the pool
        if rotated is None:
            return None
        successor, grant = rotated
        try:
            principal = Principal(
                user=grant,  # type: ignore[arg-type] # has the subject, all a token needs
                grant_id=grant.id,
                session_id=grant.session_id,
                auth_time=grant.auth_time,
                acr=grant.acr,
                amr=list(grant.amr),
            )
            token = self.services.server.generate_bearer_token(
                "refresh_token",
                client,
                user=principal,
                scope=grant.scope,
                include_refresh_token=False,
            )
        except Exception:
            log.exception("refresh failed after the rotation")
            return _server_error()
        token["refresh_token"] = successor
        return json.dumps(token).encode()

    def _userinfo(self, environ: dict[str, Any]) -> bytes | None:
        scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        tokens = self.services.tokens
        try:
            token = tokens.verify_access_token(value.strip())
        except InvalidTokenError:
            return None
        scopes = token.scope.split()
        if "openid" not in scopes:
            return None
        engine = self.app.extensions["idp.statement_engine"]
        if engine.dialect.name == "postgresql":
            connection = engine.raw_connection()
            try:
                user = tokens.userinfo_subject_on_postgresql(connection.driver_connection, token)
            finally:
                connection.close()  # back to the pool
        else:
            with engine.connect() as connection:
                user = tokens.userinfo_subject(connection, token)
        if user is None:
            return None
        return json.dumps(user_claims(user, scopes)).encode()

    def _authorize(self, environ: dict[str, Any]) -> Response | None:
        try:
            pairs = parse_qsl(environ.get("QUERY_STRING", ""), strict_parsing=True, errors="strict")
        except ValueError:  # UnicodeDecodeError included
            return None
        params = dict(pairs)
        if (
            len(params) != len(pairs)
            or not params.keys() <= AUTHORIZE_PARAMETERS
            or any(len(value) > MAX_PARAMETER_LENGTH for value in params.values())
        ):
            return None
        with self.app.app_context():
            cookie = parse_cookie(environ).get(sso_cookie_name())
            if not cookie:
                return None  # a login to start: the full endpoint's work
            try:
                grant, redirect_uri = validate_authorization(params)
            except (OAuth2Error, ValueError):
                return None
            if not grant.request.client.is_first_party:
                return None  # consent is looked up by the full endpoint
            # The session only for a valid request (reading it refreshes its idle timer).
            sso = self.services.sessions.get(cookie)
            if sso is None:
                return None
            try:
                response = issue_code(grant, redirect_uri, sso)
            except OAuth2Error:
                return None
            return security_headers(response)

    def _introspection(self, environ: dict[str, Any]) -> bytes | None:
        params = _form(environ, INTROSPECTION_PARAMETERS)
        if (
            params is None
            or params.get("token", "").count(".") != 2  # refresh tokens are opaque
            or params.get("token_type_hint", "access_token") != "access_token"
        ):
            return None
        client = self._authenticate(environ, params)
        if client is None:
            return None
        try:
            token = self.services.tokens.verify_access_token(params["token"])
        except InvalidTokenError:
            return None
        if token.client_id != client.client_id:
            return None
        return json.dumps(access_token_introspection(token)).encode()

    def _authenticate(
        self, environ: dict[str, Any], params: dict[str, str], allow_public: bool = False
    ) -> RegisteredClient | None:
        """The confidential client whose secret came by exactly one of the two
        methods, or with ``allow_public`` a public client named by ``client_id``
        alone (``none``); ``None`` for anything else, failures included."""
        header = environ.get("HTTP_AUTHORIZATION")
        if allow_public and header is None and "client_secret" not in params:
            public: RegisteredClient | None = self.services.clients.get(params.get("client_id", ""))
            return public if public is not None and public.is_public else None
        if header is not None:
            if "client_id" in params or "client_secret" in params:
                return None
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, colon, secret = decoded.partition(":")
            if not colon:
                return None
            client_id, secret = unquote(client_id), unquote(secret)
            method = "client_secret_basic"
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
            method = "client_secret_post"
        if not client_id or not secret:
            return None
        client: RegisteredClient | None = self.services.clients.get(client_id)
        if (
            client is None
            or client.is_public
            or not client.check_endpoint_auth_method(method, "token")
            or not client.check_client_secret(secret)
        ):
            return None
        return client


def _server_error() -> Response:
    error = {"error": "server_error", "error_description": "Please try again later."}
    return Response(json.dumps(error), status=500, headers=OAUTH_HEADERS)


def _form(environ: dict[str, Any], allowed: frozenset[str]) -> dict[str, str] | None:
    """The parameters of a small form body, when each comes once and all are
    ``allowed``; ``None`` otherwise."""
    body = _take_form_body(environ)
    if body is None:
        return None
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= allowed:
        return None
    return params


def _take_form_body(environ: dict[str, Any]) -> bytes | None:
    """Read a small form body and put it back for whoever reads it next;
    ``None`` (nothing read) when the request is not such a body."""
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if mimetype != "application/x-www-form-urlencoded":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY_BYTES:
        return None
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body
