"""The client registry: relying parties registered in SQL, cached in process.

A cached client may be up to :data:`CACHE_SECONDS` stale in *other* processes
after a change (the process that makes a change drops its cache at once).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749 import list_to_scope
from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Client
from idp.services import secrets
from idp.services.keys import ALGORITHMS

__all__ = [
    "GRANT_TYPES",
    "SCOPES",
    "ClientError",
    "ClientRegistry",
    "RegisteredClient",
]

CACHE_SECONDS = 5
#: Scopes this provider knows (OIDC Core §5.4, plus ``organization``).
SCOPES = ("openid", "profile", "email", "phone", "address", "organization", "offline_access")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{3,100}$")


class ClientError(ValueError):
    """A client registration is invalid or the client does not exist."""


@dataclass(frozen=True)
class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """An immutable snapshot of a client row, as the OAuth machinery sees it."""

    client_id: str
    display_name: str
    secret_hash: str | None
    is_first_party: bool
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    frontchannel_logout_uri: str | None
    initiate_login_uri: str | None
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    signing_alg: str
    client_metadata: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_row(cls, row: Client) -> RegisteredClient:
        return cls(
            client_id=row.client_id,
            display_name=row.display_name,
            secret_hash=row.secret_hash,
            is_first_party=row.is_first_party,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            backchannel_logout_uri=row.backchannel_logout_uri,
            frontchannel_logout_uri=row.frontchannel_logout_uri,
            initiate_login_uri=row.initiate_login_uri,
            scopes=tuple(row.scopes),
            grant_types=tuple(row.grant_types),
            signing_alg=row.signing_alg,
        )

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    # -- authlib ClientMixin ------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """No default: ``redirect_uri`` is required (OIDC Core §3.1.2.1)."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have (RFC 6749 §3.3).

        With no ``scope`` the client gets nothing implicitly; unknown scopes are
        refused by the server's ``scopes_supported`` check before this.
        """
        if not scope:
            return ""
        allowed = set(self.scopes)
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string match against the registration (OAuth 2.0 Security BCP §4.1)."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def _validate_uri(uri: str, what: str, allow_custom_scheme: bool = False) -> str:
    parts = urlsplit(uri)
    if parts.fragment:
        raise ClientError(f"{what} must not contain a fragment: {uri}")
    if parts.scheme == "https" or (
        parts.scheme == "http"
        and parts.hostname
        in (
            "localhost",
            "127.0.0.1",
            "::1",
        )
    ):
        if not parts.hostname:
            raise ClientError(f"{what} has no host: {uri}")
        return uri
    if parts.scheme == "http":
        raise ClientError(f"{what} must use https (http only for localhost): {uri}")
    if allow_custom_scheme and parts.scheme and "." in parts.scheme:
        return uri  # RFC 8252 §7.1 private-use scheme of a native app
    raise ClientError(f"{what} is not an absolute https URI: {uri}")


@dataclass
class ClientSpec:
    """What an admin asks for when adding or updating a client."""

    client_id: str | None = None
    display_name: str | None = None
    is_public: bool | None = None
    is_first_party: bool | None = None
    redirect_uris: list[str] | None = None
    post_logout_redirect_uris: list[str] | None = None
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    initiate_login_uri: str | None = None
    scopes: list[str] | None = None
    grant_types: list[str] | None = None
    signing_alg: str | None = None


class ClientRegistry:
    """Adds, changes and looks up clients. Lookups are cached in process."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._cache: dict[str, tuple[float, RegisteredClient | None]] = {}
        self._lock = threading.Lock()

    # -- lookups ------------------------------------------------------------
    def get(self, client_id: str | None) -> RegisteredClient | None:
        """The client with ``client_id``, from the cache when it is fresh."""
        if not client_id:
            return None
        hit = self._cache.get(client_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        with self._session_factory() as session:
            row = session.scalar(select(Client).where(Client.client_id == client_id))
            client = RegisteredClient.from_row(row) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now + CACHE_SECONDS, client)
        return client

    def all(self) -> list[RegisteredClient]:
        with self._session_factory() as session:
            rows = session.scalars(select(Client).order_by(Client.client_id))
            return [RegisteredClient.from_row(r) for r in rows]

    def invalidate(self, client_id: str | None = None) -> None:
        with self._lock:
            if client_id is None:
                self._cache.clear()
            else:
                self._cache.pop(client_id, None)

    # -- changes ------------------------------------------------------------
    def add(self, spec: ClientSpec) -> tuple[RegisteredClient, str | None]:
        """Register a client. Returns it and, for a confidential client, its secret
        (shown once; only its hash is stored)."""
        if not spec.client_id or not CLIENT_ID_PATTERN.match(spec.client_id):
            raise ClientError("client id must be 3-100 characters of letters, digits and . _ ~ -")
        row = Client(client_id=spec.client_id, display_name=spec.display_name or spec.client_id)
        secret = None if spec.is_public else secrets.new_secret()
        row.secret_hash = secrets.digest(secret) if secret else None
        defaults = ClientSpec(
            is_first_party=False,
            redirect_uris=[],
            post_logout_redirect_uris=[],
            scopes=["openid", "profile", "email"],
            grant_types=["authorization_code", "refresh_token"],
            signing_alg="RS256",
        )
        merged = ClientSpec(
            **{
                name: value if value is not None else getattr(defaults, name)
                for name, value in vars(spec).items()
            }
        )
        self._apply(row, merged)
        with self._session_factory() as session:
            if session.scalar(select(Client.id).where(Client.client_id == spec.client_id)):
                raise ClientError(f"client {spec.client_id} already exists")
            session.add(row)
            session.commit()
            client = RegisteredClient.from_row(row)
        self.invalidate(client.client_id)
        return client, secret

    def update(self, client_id: str, spec: ClientSpec) -> RegisteredClient:
        with self._session_factory() as session:
            row = self._row(session, client_id)
            if spec.is_public is not None and spec.is_public != (row.secret_hash is None):
                raise ClientError(
                    "a client cannot change between public and confidential; "
                    "remove it and add it again"
                )
            self._apply(row, spec)
            session.commit()
            client = RegisteredClient.from_row(row)
        self.invalidate(client_id)
        return client

    def rotate_secret(self, client_id: str) -> str:
        """Give a confidential client a new secret; the old one stops working."""
        with self._session_factory() as session:
            row = self._row(session, client_id)
            if row.secret_hash is None:
                raise ClientError(f"{client_id} is a public client and has no secret")
            secret = secrets.new_secret()
            row.secret_hash = secrets.digest(secret)
            session.commit()
        self.invalidate(client_id)
        return secret

    def remove(self, client_id: str) -> None:
        with self._session_factory() as session:
            self._row(session, client_id)
            session.execute(delete(Client).where(Client.client_id == client_id))
            session.commit()
        self.invalidate(client_id)

    @staticmethod
    def _row(session: Session, client_id: str) -> Client:
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        if row is None:
            raise ClientError(f"no client {client_id}")
        return row

    @staticmethod
    def _apply(row: Client, spec: ClientSpec) -> None:
        if spec.display_name is not None:
            row.display_name = spec.display_name.strip() or row.client_id
        if spec.is_first_party is not None:
            row.is_first_party = spec.is_first_party
        if spec.redirect_uris is not None:
            row.redirect_uris = [
                _validate_uri(u, "redirect URI", allow_custom_scheme=True)
                for u in _unique(spec.redirect_uris)
            ]
        if spec.post_logout_redirect_uris is not None:
            row.post_logout_redirect_uris = [
                _validate_uri(u, "post-logout redirect URI", allow_custom_scheme=True)
                for u in _unique(spec.post_logout_redirect_uris)
            ]
        if spec.backchannel_logout_uri is not None:
            row.backchannel_logout_uri = (
                _validate_uri(spec.backchannel_logout_uri, "back-channel logout URI")
                if spec.backchannel_logout_uri
                else None
            )
        if spec.frontchannel_logout_uri is not None:
            row.frontchannel_logout_uri = (
                _validate_uri(spec.frontchannel_logout_uri, "front-channel logout URI")
                if spec.frontchannel_logout_uri
                else None
            )
        if spec.initiate_login_uri is not None:
            row.initiate_login_uri = (
                _validate_uri(spec.initiate_login_uri, "initiate login URI")
                if spec.initiate_login_uri
                else None
            )
        if spec.scopes is not None:
            unknown = set(spec.scopes) - set(SCOPES)
            if unknown:
                raise ClientError(f"unknown scopes: {', '.join(sorted(unknown))}")
            row.scopes = list(_unique(spec.scopes))
        if spec.grant_types is not None:
            unknown = set(spec.grant_types) - set(GRANT_TYPES)
            if unknown:
                raise ClientError(f"unknown grant types: {', '.join(sorted(unknown))}")
            row.grant_types = list(_unique(spec.grant_types))
        if spec.signing_alg is not None:
            if spec.signing_alg not in ALGORITHMS:
                raise ClientError(f"signing algorithm must be one of {', '.join(ALGORITHMS)}")
            row.signing_alg = spec.signing_alg
        if row.secret_hash is None and "client_credentials" in row.grant_types:
            raise ClientError("a public client cannot use client_credentials")
        if "authorization_code" in row.grant_types and not row.redirect_uris:
            raise ClientError("a client using authorization_code needs a redirect URI")


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))
