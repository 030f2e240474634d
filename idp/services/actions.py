"""Single-use links sent by e-mail: account activation and password reset.

The link carries a random token; only its SHA-256 is stored. Opening the link
only *peeks* at the token (mail scanners open links too); the step that acts on
it *consumes* it with one conditional ``UPDATE``, so it works exactly once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp import clock
from idp.models import ActionToken
from idp.services import secrets
from idp.services.tokens import aware

__all__ = [
    "ACTIVATION",
    "PASSWORD_RESET",
    "ActionTokenError",
    "ActionTokens",
    "ExpiredLinkError",
    "UsedLinkError",
]

ACTIVATION = "activation"
PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name


class ActionTokenError(Exception):
    """The link is unknown, expired or used."""


class ExpiredLinkError(ActionTokenError):
    pass


class UsedLinkError(ActionTokenError):
    pass


class ActionTokens:
    def __init__(self, lifetime_seconds: int) -> None:
        self.lifetime_seconds = lifetime_seconds

    def issue(self, session: Session, user_id: int, purpose: str, client_id: str | None) -> str:
        """Create a link token for ``user_id``; returns the token (shown once)."""
        token = secrets.new_secret()
        session.add(
            ActionToken(
                token_hash=secrets.digest(token),
                purpose=purpose,
                user_id=user_id,
                client_id=client_id,
                expires_at=clock.utcnow() + dt.timedelta(seconds=self.lifetime_seconds),
            )
        )
        session.commit()
        return token

    def peek(self, session: Session, token: str, purpose: str) -> ActionToken:
        """The live token row, without using it up."""
        row = session.scalar(
            select(ActionToken).where(
                ActionToken.token_hash == secrets.digest(token), ActionToken.purpose == purpose
            )
        )
        return self._check(row)

    def peek_digest(self, session: Session, token_hash: str) -> ActionToken:
        return self._check(session.get(ActionToken, token_hash))

    def consume(self, session: Session, token_hash: str) -> ActionToken:
        """Use the token up, atomically: of two concurrent uses only one succeeds."""
        row = self.peek_digest(session, token_hash)
        result = session.execute(
            update(ActionToken)
            .where(ActionToken.token_hash == token_hash, ActionToken.used_at.is_(None))
            .values(used_at=clock.utcnow())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            raise UsedLinkError
        session.commit()
        return row

    def void(self, session: Session, user_id: int) -> None:
        """Use up every open link of the user: once a password is set, older
        activation and reset links must not set it again."""
        session.execute(
            update(ActionToken)
            .where(ActionToken.user_id == user_id, ActionToken.used_at.is_(None))
            .values(used_at=clock.utcnow())
        )
        session.commit()

    @staticmethod
    def _check(row: ActionToken | None) -> ActionToken:
        if row is None:
            raise ActionTokenError
        if row.used_at is not None:
            raise UsedLinkError
        if clock.utcnow() >= aware(row.expires_at):
            raise ExpiredLinkError
        return row
