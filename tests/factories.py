"""Test data made through the services, the way an admin would make it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

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
        email = email or f"kim.{uuid.uuid4().hex[:6]}@example.com"
        return self.services.accounts.create(email, UserProfile(**profile), password=password)
