"""Test data made through the services, the way an admin would make it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import pyotp
from flask import Flask

from idp.services.accounts import UserProfile
from idp.services.clients import ClientSpec
from idp.services.clients import RegisteredClient

PASSWORD = "Correct-Horse-9"
REDIRECT_URI = "http://localhost:8000/callback"


@dataclass
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


class Factory:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.services = app.extensions["idp"]

    def client(
        self, client_id: str | None = None, **values: Any
    ) -> tuple[RegisteredClient, str | None]:
        values.setdefault("display_name", "Test Portal")
        values.setdefault("is_first_party", True)
        values.setdefault("redirect_uris", [REDIRECT_URI])
        values.setdefault(
            "scopes",
            ["openid", "profile", "email", "phone", "address", "organization", "offline_access"],
        )
        values.setdefault(
            "grant_types",
            ["authorization_code", "refresh_token", "client_credentials"]
            if not values.get("is_public")
            else ["authorization_code", "refresh_token"],
        )
        spec = ClientSpec(client_id=client_id or f"client-{uuid.uuid4().hex[:8]}", **values)
        return self.services.clients.add(spec)

    def user(self, email: str | None = None, password: str = PASSWORD, **profile: Any):  # type: ignore[no-untyped-def]
        profile.setdefault("name", "Kim Testesen")
        profile.setdefault("given_name", "Kim")
        profile.setdefault("family_name", "Testesen")
        profile.setdefault("job_title", "HR assistent")
        profile.setdefault("organization", "Testorganisation A/S")
        # Most tests log in with a password alone; the second factor has its own.
        profile.setdefault("mfa_required", False)
        email = email or f"kim.{uuid.uuid4().hex[:6]}@example.com"
        return self.services.accounts.create(email, UserProfile(**profile), password=password)

    def enrol(
        self, user: Any, *, totp: bool = True, phone: str | None = None, emergency: bool = True
    ) -> Enrolment:
        """Give ``user`` second factors as activation would: an authenticator
        app, a verified phone number for SMS, an emergency code."""
        from idp.db import get_session
        from idp.models import User
        from idp.services import recovery

        enrolment = Enrolment()
        with self.app.app_context():
            session = get_session()
            if totp:
                enrolment.totp_secret = pyotp.random_base32()
                self.services.factors.save_totp(session, user.id, enrolment.totp_secret, 0)
            if phone:
                row = session.get(User, user.id)
                row.phone_number, row.phone_number_verified = phone, True
                session.commit()
            if emergency:
                enrolment.emergency_code = recovery.generate_code()
                self.services.factors.save_recovery_code(session, user.id, enrolment.emergency_code)
        return enrolment

    def passkey(self, user: Any, device: Any, origin: str = "http://localhost") -> Any:
        """Register ``device`` (a tests.authenticator.Authenticator) as a passkey of ``user``."""
        from idp.db import get_session
        from idp.models import User

        with self.app.app_context():
            session = get_session()
            row = session.get(User, user.id)
            passkeys = self.services.passkeys
            options = passkeys.registration_options(session, row, "factory")
            return passkeys.register(
                session, row, "factory", device.create_json(options, origin), "Nøgle"
            )


@dataclass
class Enrolment:
    totp_secret: str | None = None
    emergency_code: str | None = None

    def totp_code(self) -> str:
        assert self.totp_secret
        return pyotp.TOTP(self.totp_secret).now()
