"""Token revocation (RFC 7009) and introspection (RFC 7662) on Authlib's endpoints.

Both take either kind of token: a JWT access token (verified locally, revoked
through the deny-list) or an opaque refresh token (looked up by its hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from idp import clock
from idp.db import get_session
from idp.models import Grant
from idp.models import RefreshToken
from idp.services.tokens import AccessToken
from idp.services.tokens import InvalidTokenError
from idp.services.tokens import Tokens
from idp.services.tokens import aware

__all__ = ["IdpIntrospectionEndpoint", "IdpRevocationEndpoint", "access_token_introspection"]

#: The claims of an access token that introspection answers with (RFC 7662 §2.2).
INTROSPECTED_CLAIMS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "sid")


def access_token_introspection(token: AccessToken) -> dict[str, Any]:
    """RFC 7662 §2.2 for a live access token."""
    claims = token.claims
    return {
        "active": True,
        "token_type": "Bearer",
        **{name: claims[name] for name in INTROSPECTED_CLAIMS if name in claims},
    }


@dataclass
class FoundToken:
    """A presented token, whichever kind it is, as Authlib's endpoints see it."""

    client_id: str
    access: AccessToken | None = None
    refresh: RefreshToken | None = None
    grant: Grant | None = None
    #: False when the token is known but no longer usable.
    is_usable: bool = True

    def check_client(self, client: ClientMixin) -> bool:
        return bool(self.client_id == client.get_client_id())

    def is_expired(self) -> bool:
        return False  # checked when the token was found

    def is_revoked(self) -> bool:
        return not self.is_usable


def find_token(tokens: Tokens, value: str, hint: str | None) -> FoundToken | None:
    """Look the token up by its shape: a JWT has two dots, a refresh token none."""
    if value.count(".") == 2:
        try:
            access = tokens.verify_access_token(value)
        except InvalidTokenError:
            return None
        return FoundToken(client_id=access.client_id, access=access)
    found = tokens.find_refresh_token(get_session(), value)
    if found is None:
        return None
    refresh, grant, _ = found
    usable = refresh.used_at is None and tokens.is_grant_live(grant)
    return FoundToken(client_id=grant.client_id, refresh=refresh, grant=grant, is_usable=usable)


class IdpRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking a refresh token revokes its grant and with it the
    access tokens of that grant (§2.1); revoking an access token deny-lists it."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # noqa: RUF012

    def __init__(self, server: Any, tokens: Tokens) -> None:
        super().__init__(server)
        self.tokens = tokens

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return find_token(self.tokens, token_string, token_type_hint)

    def authenticate_token(self, request: Any, client: ClientMixin) -> FoundToken | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # RFC 7009 §2.2: another client's token is not revoked, and the answer is
        # the same 200 as for an unknown token, so it reveals nothing.
        if token is not None and not token.check_client(client):
            return None
        return token

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        if token.access is not None:
            self.tokens.deny_access_token(token.access)
        elif token.grant is not None:
            self.tokens.revoke_grant(get_session(), token.grant.id)


class IdpIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for confidential clients, about their own tokens."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def __init__(self, server: Any, tokens: Tokens) -> None:
        super().__init__(server)
        self.tokens = tokens

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return find_token(self.tokens, token_string, token_type_hint)

    def check_permission(self, token: FoundToken, client: ClientMixin, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        if token.access is not None:
            return access_token_introspection(token.access)
        grant = token.grant
        if grant is None:
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": grant.scope,
            "client_id": grant.client_id,
            "iss": self.tokens.issuer,
            "exp": int(aware(grant.expires_at).timestamp()),
            "iat": int(aware(token.refresh.created_at).timestamp())
            if token.refresh
            else clock.now(),
        }
