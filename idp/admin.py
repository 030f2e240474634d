"""What administrators do to accounts (journey J5), shared by the admin pages
and the ``idp`` command. Every action is written to the audit log with the
admin as actor (none for the command line) and the account as subject.

Revocation is complete: the IdP sessions end, the refresh grants die, live
access tokens are deny-listed until they expire, and every product a session
reached gets a back-channel logout.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.context import services
from idp.invitations import send_activation_link
from idp.invitations import send_password_reset_link
from idp.models import User
from idp.services.audit import Origin
from idp.services.logout import Ended
from idp.services.sessions import SsoSession

__all__ = [
    "disable",
    "enable",
    "force_password_reset",
    "resend_invitation",
    "reset_factors",
    "revoke_all",
    "revoke_session",
]


def _record(db: Session, event: str, user: User, origin: Origin, actor_id: int | None) -> None:
    services().audit.record(db, event, origin, subject_id=user.id, actor_id=actor_id)


def revoke_all(db: Session, user: User, origin: Origin, actor_id: int | None) -> Ended:
    """End every session and grant of the user, everywhere."""
    ended = services().logout.end_user(db, user.id, origin, actor_id=actor_id)
    _record(db, "admin.sessions_revoked", user, origin, actor_id)
    return ended


def revoke_session(
    db: Session, user: User, sso: SsoSession, origin: Origin, actor_id: int | None
) -> Ended:
    """End one session of the user (the others keep working)."""
    return services().logout.end_session(
        db, sso, origin, actor_id=actor_id, event="session.revoked"
    )


def disable(db: Session, user: User, origin: Origin, actor_id: int | None) -> Ended:
    """The account can no longer log in, and is logged out everywhere now."""
    user.is_active = False
    db.commit()
    _record(db, "admin.user_disabled", user, origin, actor_id)
    return services().logout.end_user(db, user.id, origin, actor_id=actor_id)


def enable(db: Session, user: User, origin: Origin, actor_id: int | None) -> None:
    user.is_active = True
    db.commit()
    _record(db, "admin.user_enabled", user, origin, actor_id)


def reset_factors(db: Session, user: User, origin: Origin, actor_id: int | None) -> Ended:
    """Forget every second factor (app, phone, passkeys, emergency code); the
    user sets them up again at the next login. Logged out everywhere."""
    services().factors.remove_all(db, user.id)
    _record(db, "admin.factors_reset", user, origin, actor_id)
    return services().logout.end_user(db, user.id, origin, actor_id=actor_id)


def force_password_reset(db: Session, user: User, origin: Origin, actor_id: int | None) -> Ended:
    """The password stops working; the user gets a link to choose a new one
    and is logged out everywhere."""
    svc = services()
    user.password_hash = None
    db.commit()
    svc.actions.void(db, user.id)
    send_password_reset_link(db, user, None)
    _record(db, "admin.password_reset_forced", user, origin, actor_id)
    return svc.logout.end_user(db, user.id, origin, actor_id=actor_id)


def resend_invitation(db: Session, user: User, origin: Origin, actor_id: int | None) -> None:
    send_activation_link(db, user, None)
    _record(db, "admin.invitation_sent", user, origin, actor_id)
