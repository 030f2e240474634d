"""The OAuth 2.0 / OpenID Connect authorization server, composed from Authlib.

Grants are Authlib's, subclassed to store codes in Redis (consumed atomically),
grants and refresh tokens in SQL, and to sign RFC 9068 access tokens:

* authorization code + PKCE (RFC 6749 §4.1, RFC 7636, S256 only) with the
  OpenID Connect extension (OIDC Core §3.1) for ID tokens,
* refresh token with rotation (RFC 6749 §6, Security BCP §4.14),
* client credentials (RFC 6749 §4.4).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749 import list_to_scope
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.grants.util import create_half_hash
from authlib.oidc.core.grants.util import validate_nonce
from flask import Flask

from idp import clock
from idp.db import get_session
from idp.models import Grant
from idp.models import User
from idp.services.claims import ClaimsRequestError
from idp.services.claims import parse_claims_request
from idp.services.claims import scopes_for_claims
from idp.services.claims import user_claims
from idp.services.clients import SCOPES
from idp.services.clients import ClientRegistry
from idp.services.clients import RegisteredClient
from idp.services.secrets import new_secret
from idp.services.sessions import SsoSession
from idp.services.tokens import CodeData
from idp.services.tokens import Tokens

__all__ = ["OpenIDServer", "ParamsRequest", "Principal"]


class ParamsRequest(OAuth2Request):  # type: ignore[misc]
    """An authorization request rebuilt from its parameters, so a flow can resume
    it after the login steps, outside the request that started it."""

    def __init__(
        self, uri: str, params: dict[str, str], datalist: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__("GET", uri)
        self.payload = BasicOAuth2Payload(params)
        if datalist is not None:
            self.payload._datalist = defaultdict(list, datalist)
        self._params = params

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return {}


@dataclass
class Principal:
    """The user a token is issued to, with how and when they authenticated."""

    user: User
    grant_id: str
    session_id: str | None
    auth_time: int
    acr: str | None
    amr: list[str]

    def get_user_id(self) -> str:
        return self.user.subject


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with ``S256`` only (RFC 7636 §4.2; ``plain`` is refused, OAuth 2.0
    Security BCP §2.1.1), required for public clients and, by default, for all."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's class attribute

    def __init__(self, required_for_all: bool) -> None:
        super().__init__(required=True)
        self.required_for_all = required_for_all

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is accepted.")
        client: RegisteredClient = grant.request.client
        if not data.get("code_challenge") and (self.required_for_all or client.is_public):
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012
    server: OpenIDServer
    #: The code's user, loaded when the code is consumed.
    code_user: User | None = None

    def generate_authorization_code(self) -> str:
        """256 random bits from the OS in one call (Authlib draws 48 characters
        one by one, several times slower on the authorize path)."""
        return new_secret()

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        session: SsoSession = request.user
        data = request.payload.data
        self.server.tokens.save_code(
            code,
            CodeData(
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                user_id=session.user_id,
                session_id=session.id,
                auth_time=session.auth_time,
                acr=session.acr,
                amr=session.amr,
                expires_at=clock.now() + self.server.tokens.code_seconds,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            ),
        )

    def query_authorization_code(self, code: str, client: RegisteredClient) -> CodeData | None:
        """Consume the code atomically; a replayed code revokes what it issued."""
        tokens = self.server.tokens
        data, grant_id = tokens.consume_code(code)
        if data is None:
            if grant_id is not None:
                tokens.revoke_grant(get_session(), grant_id)
            return None
        if data.client_id != client.client_id or grant_id is None:
            return None
        db = get_session()
        # The user is read in the grant's transaction (one transaction, not two).
        self.code_user = db.get(User, data.user_id)
        if self.code_user is None or not self.code_user.is_active:
            return data  # no grant: authenticate_user refuses the exchange
        if not tokens.create_grant(db, grant_id, data, self.code_user.subject):
            return None  # logged out after the code was issued: no grant
        self.request.grant_id = grant_id
        return data

    def delete_authorization_code(self, authorization_code: CodeData) -> None:
        """Nothing to do: the code was deleted when it was read."""

    def authenticate_user(self, authorization_code: CodeData) -> Principal | None:
        user = self.code_user
        if user is None or not user.is_active:
            return None
        return Principal(
            user=user,
            grant_id=self.request.grant_id,
            session_id=authorization_code.session_id,
            auth_time=authorization_code.auth_time,
            acr=authorization_code.acr,
            amr=authorization_code.amr,
        )


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: OpenIDServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshTokenRecord | None:
        session = get_session()
        found = self.server.tokens.find_refresh_token(session, refresh_token)
        if found is None:
            return None
        token, grant, user = found
        if token.used_at is not None:
            # A rotated token came back: someone holds a copy. End the grant.
            self.server.tokens.revoke_grant(session, grant.id)
            return None
        if not self.server.tokens.is_grant_live(grant):
            return None
        return RefreshTokenRecord(token.token_hash, grant, user)

    def authenticate_user(self, refresh_token: RefreshTokenRecord) -> Principal | None:
        grant = refresh_token.grant
        user = refresh_token.user  # loaded with the token
        if user is None or not user.is_active:
            return None
        return Principal(
            user=user,
            grant_id=grant.id,
            session_id=grant.session_id,
            auth_time=grant.auth_time,
            acr=grant.acr,
            amr=list(grant.amr),
        )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Rotate first: of two concurrent uses of one token, one gets a new
        token and the other revokes the grant."""
        record: RefreshTokenRecord = self.request.refresh_token
        session = get_session()
        user = self.authenticate_user(record)
        if user is None:
            raise InvalidGrantError("The user of this grant is gone or disabled.")
        successor = self.server.tokens.rotate_refresh_token(
            session, record.token_hash, record.grant.id
        )
        if successor is None:
            raise InvalidGrantError("The refresh token was already used.")
        self.request.user = user
        scope = self.request.payload.scope or record.get_scope()
        token = self.generate_token(user=user, scope=scope, include_refresh_token=False)
        token["refresh_token"] = successor
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def revoke_old_credential(self, refresh_token: RefreshTokenRecord) -> None:
        """Done in :meth:`create_token_response`, atomically with the rotation."""


@dataclass
class RefreshTokenRecord:
    """A refresh token as Authlib's token mixin sees it."""

    token_hash: str
    grant: Grant
    user: User | None = None

    def check_client(self, client: ClientMixin) -> bool:
        return bool(self.grant.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.grant.scope


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012


class OpenIDCode(oidc_grants.OpenIDCode):  # type: ignore[misc]
    """ID tokens for the code flow, made by :meth:`OpenIDServer.id_token`."""

    def __init__(self, server: OpenIDServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def __call__(self, grant: Any) -> None:
        # ``prompt`` is handled by the authorization view, with the SSO session.
        grant.register_hook("after_create_token_response", self.process_token)
        grant.register_hook(
            "after_validate_authorization_request_payload",
            self.validate_openid_authorization_request,
        )

    def validate_openid_authorization_request(self, grant: Any, redirect_uri: str) -> None:
        validate_nonce(grant.request, self.exists_nonce, self.require_nonce)
        try:
            requested = parse_claims_request(grant.request.payload.data.get("claims"))
        except ClaimsRequestError as error:
            raise InvalidRequestError(str(error)) from None
        # OIDC Core §5.5: requested claims widen the scope, within the client's
        # registered scopes, so consent and the client's limits apply to them.
        request = grant.request
        granted = scope_to_list(request.scope) or []
        extra = sorted(scopes_for_claims(requested) & set(request.client.scopes) - set(granted))
        if extra:
            request.scope = list_to_scope([*granted, *extra])

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        """Nonces are checked by the client (OIDC Core §3.1.3.7); we echo them."""
        return False

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        return self.server.id_token(
            request.client,
            request.authorization_code,
            self.generate_user_info(request.user, token["scope"]),
            token.get("access_token"),
        )

    def generate_user_info(self, user: Principal, scope: str) -> dict[str, Any]:
        return user_claims(user.user, scope.split())


class OpenIDServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask authorization server with this provider's storage."""

    def __init__(
        self,
        registry: ClientRegistry,
        tokens: Tokens,
        issuer: str,
        id_token_seconds: int,
        pkce_required_for_all: bool,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.tokens = tokens
        self.keyring = tokens.keyring
        self.issuer = issuer
        self.id_token_seconds = id_token_seconds
        self.scopes_supported = list(SCOPES)
        self.register_token_generator("default", self.generate_bearer_token)
        self.register_grant(
            AuthorizationCodeGrant,
            [S256CodeChallenge(required_for_all=pkce_required_for_all), OpenIDCode(self)],
        )
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)

    def id_token(
        self,
        client: RegisteredClient,
        code: CodeData,
        user_info: dict[str, Any],
        access_token: str | None,
    ) -> str:
        """The ID token of a code exchange (OIDC Core §3.1.3.6), signed with the
        client's algorithm by the current key, carrying ``sid``, ``azp`` and
        the access token's ``at_hash`` (§3.1.3.8)."""
        now = clock.now()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": [client.client_id],
            "azp": client.client_id,
            "iat": now,
            "exp": now + self.id_token_seconds,
            "auth_time": code.auth_time,
        }
        if code.nonce:
            claims["nonce"] = code.nonce
        if code.acr:
            claims["acr"] = code.acr
        if code.amr:
            claims["amr"] = code.amr
        claims["sid"] = code.session_id
        if access_token:
            claims["at_hash"] = create_half_hash(access_token, client.signing_alg).decode()
        claims.update(user_info)
        return self.keyring.signer(client.signing_alg).sign(claims, "JWT")

    def init_app(self, app: Flask, query_client: Any = None, save_token: Any = None) -> None:
        """Settings come from :class:`idp.config.Settings`, not ``app.config``."""

    def query_client(self, client_id: str) -> RegisteredClient | None:
        return self.registry.get(client_id)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)

    def generate_bearer_token(
        self,
        grant_type: str,
        client: RegisteredClient,
        user: Principal | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The token response body: a signed JWT access token (RFC 9068)."""
        scope = client.get_allowed_scope(scope)
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {
                "gid": user.grant_id,
                "auth_time": user.auth_time,
                "acr": user.acr,
                "amr": user.amr,
            }
            if user.session_id:
                extra["sid"] = user.session_id
        subject = user.get_user_id() if user is not None else client.client_id
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.tokens.issue_access_token(
                client.client_id, client.signing_alg, scope, subject, extra
            ),
            "expires_in": self.tokens.access_token_seconds,
            "scope": scope,
        }
        # OIDC Core §11: a refresh token only for offline_access, which the
        # consent screen names (first-party clients are trusted with it).
        if (
            user is not None
            and include_refresh_token
            and grant_type == "authorization_code"
            and "offline_access" in scope.split()
        ):
            token["refresh_token"] = None  # filled in by save_token once the grant exists
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Give a code exchange's grant (made when the code was consumed) its
        first refresh token."""
        if request.payload.grant_type == "authorization_code" and "refresh_token" in token:
            token["refresh_token"] = self.tokens.add_refresh_token(
                get_session(), request.user.grant_id
            )
