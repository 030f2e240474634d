"""Discovery and JWKS without the Flask request cycle.

Both are the same bytes for every caller until a key changes state, so they
are answered straight from WSGI: prepared once (the JWKS again only when the
key ring rebuilds it), with an ETag, ``Cache-Control`` and CORS, and ``304``
for a conditional request that already has them. Everything else goes on to
Flask.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from flask import Flask

__all__ = ["DISCOVERY_PATH", "JWKS_PATH", "StaticDocuments"]

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"
#: The security headers every answer of ours carries (see idp.web).
COMMON_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Access-Control-Allow-Origin", "*"),
]

StartResponse = Callable[..., Any]


class StaticDocuments:
    def __init__(
        self, app: Flask, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
    ):
        self.app = app
        self.wsgi_app = wsgi_app
        self._discovery: tuple[bytes, str] | None = None
        self._jwks: tuple[bytes, bytes, str] | None = None  # source, body, etag

    def _document(self, path: str) -> tuple[bytes, str]:
        if path == DISCOVERY_PATH:
            if self._discovery is None:
                from idp.oidc.views import discovery_document

                with self.app.app_context():
                    body = json.dumps(discovery_document(), separators=(",", ":")).encode()
                self._discovery = (body, _etag(body))
            return self._discovery
        body = self.app.extensions["idp"].keyring.jwks_json  # rebuilt when a key changes
        if self._jwks is None or self._jwks[0] is not body:
            self._jwks = (body, body, _etag(body))
        return self._jwks[1], self._jwks[2]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path not in (DISCOVERY_PATH, JWKS_PATH) or method not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        body, etag = self._document(path)
        max_age = self.app.extensions["idp"].settings.metadata_cache_seconds
        headers = [
            ("ETag", etag),
            ("Cache-Control", f"public, max-age={max_age}"),
            *COMMON_HEADERS,
        ]
        if etag in environ.get("HTTP_IF_NONE_MATCH", ""):
            start_response("304 Not Modified", headers)
            return []
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [body]


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
