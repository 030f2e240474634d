"""The common, valid token request answered without the Flask request cycle.

A service asking for a ``client_credentials`` token is the hottest call an
identity provider gets, and most of its cost here was the framework around the
signature. :class:`TokenShortcut` answers that request straight from WSGI when
it is the plain, valid case: a form body with each parameter once, the client
authenticated by ``client_secret_basic`` or ``client_secret_post``, allowed the
grant, and only known scopes. The answer is the one the full endpoint gives
(the same token generator, body and headers).

Anything else (an error of any kind, another grant type, an unusual request)
goes on to the full endpoint untouched, which answers it as always; so the
shortcut never has to produce an error, and cannot produce one that differs.
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

from flask import Flask

from idp.services.clients import SCOPES
from idp.services.clients import RegisteredClient

__all__ = ["TokenShortcut"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
TOKEN_PATH = "/token"  # noqa: S105 - a path
#: Longer bodies are not the plain case; the full endpoint takes them.
MAX_BODY_BYTES = 4096
#: The parameters a plain client-credentials request may carry.
PARAMETERS = frozenset(("grant_type", "scope", "client_id", "client_secret"))
RESPONSE_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
KNOWN_SCOPES = frozenset(SCOPES)


class TokenShortcut:
    def __init__(
        self, app: Flask, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
    ) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != TOKEN_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        body = _take_form_body(environ)
        if body is not None:
            try:
                answer = self._client_credentials(environ, body)
            except Exception:  # the full endpoint will meet the same fault and answer it
                log.exception("token shortcut failed; the full endpoint answers")
                answer = None
            if answer is not None:
                start_response("200 OK", [*RESPONSE_HEADERS, ("Content-Length", str(len(answer)))])
                return [answer]
        return self.wsgi_app(environ, start_response)

    def _client_credentials(self, environ: dict[str, Any], body: bytes) -> bytes | None:
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return None
        params = dict(pairs)
        if (
            len(params) != len(pairs)
            or params.get("grant_type") != "client_credentials"
            or not params.keys() <= PARAMETERS
        ):
            return None
        client = self._authenticate(environ, params)
        if client is None or "client_credentials" not in client.grant_types:
            return None
        scope = params.get("scope")
        if scope is not None and not set(scope.split()) <= KNOWN_SCOPES:
            return None  # invalid_scope, from the full endpoint
        services = self.app.extensions["idp"]
        token = services.server.generate_bearer_token(
            "client_credentials", client, scope=scope, include_refresh_token=False
        )
        return json.dumps(token).encode()

    def _authenticate(
        self, environ: dict[str, Any], params: dict[str, str]
    ) -> RegisteredClient | None:
        """The confidential client whose secret came by exactly one of the two
        methods; ``None`` for anything else, failures included."""
        header = environ.get("HTTP_AUTHORIZATION")
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
        client: RegisteredClient | None = self.app.extensions["idp"].clients.get(client_id)
        if (
            client is None
            or client.is_public
            or not client.check_endpoint_auth_method(method, "token")
            or not client.check_client_secret(secret)
        ):
            return None
        return client


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
