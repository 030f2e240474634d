"""Durable data: SQLAlchemy 2.x models. Schema changes go through Alembic
migrations in ``idp/migrations``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import LargeBinary
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from idp.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


def new_subject() -> str:
    """A stable, opaque subject identifier (OIDC Core §2 ``sub``): random, never reused."""
    return secrets.token_urlsafe(24)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The ``sub`` claim. Never the e-mail or the row id, so neither leaks or changes.
    subject: Mapped[str] = mapped_column(String(64), unique=True, default=new_subject)
    #: Stored lower-cased; the unique index makes lookups one indexed query.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    given_name: Mapped[str] = mapped_column(String(100), default="")
    family_name: Mapped[str] = mapped_column(String(100), default="")
    job_title: Mapped[str] = mapped_column(String(200), default="")
    organization: Mapped[str] = mapped_column(String(200), default="")
    phone_number: Mapped[str | None] = mapped_column(String(32), default=None)
    phone_number_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    #: OIDC Core §5.1.1 address claim members, as given.
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    locale: Mapped[str | None] = mapped_column(String(16), default=None)
    #: argon2id hash, or ``None`` for an account with no password yet.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Whether logging in needs a second factor (users without one are sent to enrolment).
    mfa_required: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The WebAuthn user handle (random, base64url): passkeys name the account by
    #: it, never by the e-mail or the row id. Set at the first registration.
    webauthn_handle: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    #: When the user first set a password or a passkey from an invitation.
    activated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ActionToken(Base):
    """A single-use link sent by e-mail (activation, password reset), stored by
    its SHA-256 and consumed with one conditional ``UPDATE``."""

    __tablename__ = "action_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The client whose name heads the screens and where the user lands afterwards.
    client_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class TotpCredential(Base):
    """An authenticator app. The secret is encrypted at rest; the last accepted
    time step blocks replays of a code."""

    __tablename__ = "totp_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    last_used_step: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebAuthnCredential(Base):
    """A passkey or security key. Looked up by its credential id (unique
    index); the sign count catches cloned authenticators."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: base64url of the raw credential id.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: Up to 2**32 - 1.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    #: Whether the key may be synced (a passkey in a password manager), and is.
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Registered with user verification: it can log in on its own.
    user_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class RecoveryCode(Base):
    """The user's one-time emergency code, stored as a SHA-256 only."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One security event or admin action. Never holds a secret."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    #: What happened, e.g. ``login.failed``, ``account.locked``, ``factor.added``.
    event: Mapped[str] = mapped_column(String(64), index=True)
    #: Who did it (an admin, or the user themselves); ``None`` for anonymous.
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: Whom it concerns.
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    client_id: Mapped[str | None] = mapped_column(String(100), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Client(Base):
    """A registered relying party (OAuth 2.0 client)."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), unique=True)
    #: SHA-256 of the secret (it has 256 bits of entropy, so no slow hash is needed);
    #: ``None`` for a public client.
    secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    display_name: Mapped[str] = mapped_column(String(200))
    is_first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text, default=None)
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(Text, default=None)
    #: Where to send a user to log into this client (OIDC Registration ``initiate_login_uri``).
    initiate_login_uri: Mapped[str | None] = mapped_column(Text, default=None)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``RS256`` or ``ES256``: signs this client's ID tokens and access tokens.
    signing_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None


class Consent(Base):
    """A user's remembered consent to a client's scopes."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Grant(Base):
    """What one authorization (a code exchange) granted one client for one user.

    Its refresh tokens rotate inside it; revoking it ends all of them and, through
    the Redis deny-list, the access tokens issued under it.
    """

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    #: The public session id (``sid`` claim) of the login that made the grant.
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    auth_time: Mapped[int] = mapped_column(Integer)
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class RefreshToken(Base):
    """One refresh token of a grant, stored by its SHA-256. Rotated on use."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Set when the token was exchanged; a second exchange is a replay.
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class LogoutDelivery(Base):
    """A back-channel logout token on its way to a client. Sent at once from
    the background; failures are retried with a growing delay until it is
    delivered or ``attempts`` runs out."""

    __tablename__ = "logout_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    uri: Mapped[str] = mapped_column(Text)
    #: The last logout token sent, signed afresh at each attempt (no secret:
    #: it only says "this session ended").
    logout_token: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
