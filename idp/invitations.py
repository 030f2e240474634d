"""E-mailed links: inviting users (the account is created or found and an
activation link is e-mailed) and password-reset links. Used by the login
screens, ``idp users …`` and the admin pages."""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.context import services
from idp.models import User
from idp.notify import send_email
from idp.services.accounts import UserProfile
from idp.services.accounts import normalize_email
from idp.services.actions import ACTIVATION
from idp.services.actions import PASSWORD_RESET

__all__ = ["activation_link", "invite", "send_activation_link", "send_password_reset_link"]


def activation_link(token: str) -> str:
    return f"{services().settings.issuer}/activate/{token}"


def send_activation_link(session: Session, user: User, client_id: str | None) -> None:
    """E-mail ``user`` a fresh single-use activation link."""
    token = services().actions.issue(session, user.id, ACTIVATION, client_id)
    client = services().clients.get(client_id) if client_id else None
    send_email(
        "invitation",
        user,
        link=activation_link(token),
        client_name=client.display_name if client else services().settings.brand_name,
        hours=services().settings.action_link_seconds // 3600,
    )


def send_password_reset_link(session: Session, user: User, client_id: str | None) -> None:
    """E-mail ``user`` a fresh single-use link to choose a new password."""
    token = services().actions.issue(session, user.id, PASSWORD_RESET, client_id)
    send_email(
        "password_reset",
        user,
        link=f"{services().settings.issuer}/reset/{token}",
        hours=services().settings.action_link_seconds // 3600,
    )


def invite(session: Session, email: str, profile: UserProfile, client_id: str | None) -> User:
    """Create the account if it does not exist, then send the invitation.

    An existing account keeps its password and factors; activating it only sets
    a new password (journey J2).
    """
    accounts = services().accounts
    user = accounts.find(email)
    if user is None:
        user = accounts.create(email, profile)
    else:
        user = accounts.update(normalize_email(email), profile)
    user = session.merge(user)
    send_activation_link(session, user, client_id)
    return user
