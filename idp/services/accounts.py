"""User accounts: creation, lookup and password authentication."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import User
from idp.services.passwords import Passwords

__all__ = ["BY_EMAIL", "AccountError", "Accounts", "UserProfile", "normalize_email"]

#: The account of an e-mail address (the parameter ``email``), built once.
BY_EMAIL = select(User).where(User.email == bindparam("email"))


class AccountError(ValueError):
    """An account change is invalid (duplicate e-mail, unknown user)."""


def normalize_email(email: str) -> str:
    """E-mail addresses are compared case-insensitively, without surrounding space."""
    return email.strip().lower()


@dataclass
class UserProfile:
    """The fields an admin may set on an account."""

    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    job_title: str | None = None
    organization: str | None = None
    phone_number: str | None = None
    locale: str | None = None
    address: dict[str, Any] | None = None
    is_admin: bool | None = None
    is_active: bool | None = None
    #: Whether the account must have two-step verification (the default).
    mfa_required: bool | None = None


class Accounts:
    """Creates users and checks their passwords."""

    def __init__(self, session_factory: Callable[[], Session], passwords: Passwords) -> None:
        self._session_factory = session_factory
        self.passwords = passwords

    def create(
        self, email: str, profile: UserProfile | None = None, password: str | None = None
    ) -> User:
        email = normalize_email(email)
        if "@" not in email or len(email) > 320:
            raise AccountError(f"not an e-mail address: {email!r}")
        with self._session_factory() as session:
            if session.scalar(select(User.id).where(User.email == email)):
                raise AccountError(f"an account for {email} already exists")
            user = User(email=email, email_verified=password is not None)
            _apply(user, profile or UserProfile())
            if password is not None:
                user.password_hash = self.passwords.hash(password)
            session.add(user)
            session.commit()
            return user

    def update(self, email: str, profile: UserProfile) -> User:
        with self._session_factory() as session:
            user = self._get(session, email)
            _apply(user, profile)
            session.commit()
            return user

    def set_password(self, email: str, password: str) -> User:
        with self._session_factory() as session:
            user = self._get(session, email)
            user.password_hash = self.passwords.hash(password)
            session.commit()
            return user

    def find(self, email: str) -> User | None:
        with self._session_factory() as session:
            return session.scalar(select(User).where(User.email == normalize_email(email)))

    def find_by_id(self, session: Session, user_id: int) -> User | None:
        return session.get(User, user_id)

    def list(self) -> list[User]:
        with self._session_factory() as session:
            return list(session.scalars(select(User).order_by(User.email)))

    def authenticate(self, session: Session, email: str, password: str) -> User | None:
        """The active user with this e-mail and password, or ``None``.

        An unknown e-mail, an account without a password and a wrong password
        all cost one argon2 verification, so neither the answer nor its timing
        tells whether the account exists. A hash made with older parameters is
        upgraded on success.
        """
        row = self.authenticate_row(session, email, password)
        return row[0] if row is not None else None

    def authenticate_row(
        self, session: Session, email: str, password: str, query: Select[Any] = BY_EMAIL
    ) -> Row[Any] | None:
        """:meth:`authenticate` with ``query``'s row: the user, then what else
        the query selects (a statement built on :data:`BY_EMAIL`), so that
        the password step reads all it needs in one round trip."""
        row = session.execute(query, {"email": normalize_email(email)}).first()
        user: User | None = row[0] if row is not None else None
        stored = user.password_hash if user is not None else None
        if not self.passwords.verify(stored, password) or user is None or not user.is_active:
            return None
        if stored and self.passwords.needs_rehash(stored):
            user.password_hash = self.passwords.hash(password)
            session.commit()
        return row

    @staticmethod
    def _get(session: Session, email: str) -> User:
        user = session.scalar(select(User).where(User.email == normalize_email(email)))
        if user is None:
            raise AccountError(f"no account for {email}")
        return user


def _apply(user: User, profile: UserProfile) -> None:
    for name, value in vars(profile).items():
        if value is not None:
            setattr(user, name, value)
