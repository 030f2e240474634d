"""Which user claims a client gets, by scope (OIDC Core §5.4) and by the
``claims`` request parameter (OIDC Core §5.5)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Row

from idp.models import User

__all__ = [
    "CLAIMS_BY_SCOPE",
    "SUPPORTED_CLAIMS",
    "parse_claims_request",
    "scopes_for_claims",
    "user_claims",
]

CLAIMS_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "profile": ("name", "given_name", "family_name", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
    "organization": ("organization", "job_title"),
}
SUPPORTED_CLAIMS = ("sub", *(c for claims in CLAIMS_BY_SCOPE.values() for c in claims))


class ClaimsRequestError(ValueError):
    """The ``claims`` parameter is not a JSON object of the right shape."""


def parse_claims_request(raw: str | None) -> dict[str, Any] | None:
    """Parse and check the ``claims`` parameter; ``None`` when absent."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ClaimsRequestError("The 'claims' parameter is not valid JSON.") from None
    if not isinstance(value, dict) or not all(
        key in ("userinfo", "id_token") and (member is None or isinstance(member, dict))
        for key, member in value.items()
    ):
        raise ClaimsRequestError("The 'claims' parameter must be an object of objects.")
    return {key: member or {} for key, member in value.items()}


def _value(user: User | Row, claim: str) -> Any:
    if claim == "updated_at":
        return int(user.updated_at.timestamp())
    if claim in ("phone_number", "phone_number_verified") and not user.phone_number:
        return None
    value = getattr(user, claim, None)
    return value if value not in ("", None) else None


def scopes_for_claims(requested: dict[str, Any] | None) -> set[str]:
    """The scopes that release the claims named in a ``claims`` parameter.

    Requested claims are honoured by widening the request's scope, so the
    client's registered scopes and the user's consent (both kept in scopes)
    decide about them as about any other claim.
    """
    names = {name for member in (requested or {}).values() for name in member}
    return {scope for scope, claims in CLAIMS_BY_SCOPE.items() if names & set(claims)}


def user_claims(user: User | Row, scopes: Iterable[str]) -> dict[str, Any]:
    """The claims of ``user`` released for ``scopes``; claims without a value are
    left out (OIDC Core §5.3.2)."""
    claims: dict[str, Any] = {"sub": user.subject}
    for scope in scopes:
        for name in CLAIMS_BY_SCOPE.get(scope, ()):
            value = _value(user, name)
            if value is not None:
                claims[name] = value
    return claims
