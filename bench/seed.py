"""What the benchmark needs in the database and Redis, made in bulk through
the IdP's own models and services (never through its HTTP endpoints, so the
load measured is only the load driven)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from dataclasses import field

import pyotp
from sqlalchemy import insert

from idp import clock
from idp.db import get_session
from idp.models import Grant
from idp.models import RefreshToken
from idp.models import TotpCredential
from idp.models import User
from idp.services import secrets as idp_secrets
from idp.services.accounts import UserProfile
from idp.services.clients import ClientSpec

PASSWORD = "Bench-Password-42!"
REDIRECT_URI = "http://127.0.0.1:9/callback"
TOTP_SECRET = pyotp.random_base32()


@dataclass
class Seeded:
    secrets: dict[str, str] = field(default_factory=dict)
    access_token: str = ""
    grant_id: str = ""
    subject: str = ""
    refresh_tokens: list[str] = field(default_factory=list)
    session_cookie: str = ""
    login_emails: list[str] = field(default_factory=list)


def seed(app, *, refresh_tokens: int, login_users: int, extra_users: int = 0) -> Seeded:  # type: ignore[no-untyped-def]
    """Clients (RS256 and ES256), a user with a live SSO session, an access
    token, ``refresh_tokens`` fresh refresh tokens (each can be used once),
    ``login_users`` accounts with password + TOTP, and ``extra_users`` more
    accounts to make the user table large."""
    svc = app.extensions["idp"]
    out = Seeded()
    with app.app_context():
        for client_id, alg in (("bench-rs", "RS256"), ("bench-es", "ES256")):
            svc.clients.add(
                ClientSpec(
                    client_id=client_id,
                    display_name="Bench " + alg,
                    is_first_party=True,
                    redirect_uris=[REDIRECT_URI],
                    scopes=["openid", "profile", "email", "offline_access"],
                    grant_types=["authorization_code", "refresh_token", "client_credentials"],
                    signing_alg=alg,
                )
            )
            out.secrets[client_id] = svc.clients.rotate_secret(client_id)
        user = svc.accounts.create(
            "bench@example.com",
            UserProfile(name="Bench User", given_name="Bench", mfa_required=False),
            password=PASSWORD,
        )
        db = get_session()

        # The SSO session the authorize benchmark answers from.
        cookie, sso = svc.sessions.create(
            user.id, amr=["pwd", "otp", "mfa"], acr="2fa", auth_time=clock.now()
        )
        sso.clients.append("bench-rs")  # no session write on the measured path
        svc.sessions._write(sso, clock.now())
        out.session_cookie = cookie

        # A grant with a live access token, and a pool of refresh tokens.
        grant_ids = [idp_secrets.new_secret()[:32] for _ in range(refresh_tokens + 1)]
        expires = clock.utcnow() + dt.timedelta(days=30)
        db.execute(
            insert(Grant),
            [
                {
                    "id": grant_id,
                    "user_id": user.id,
                    "client_id": "bench-rs",
                    "scope": "openid profile email offline_access",
                    "session_id": sso.id,
                    "auth_time": clock.now(),
                    "acr": "2fa",
                    "amr": ["pwd", "otp", "mfa"],
                    "expires_at": expires,
                }
                for grant_id in grant_ids
            ],
        )
        tokens = [secrets.token_urlsafe(32) for _ in range(refresh_tokens)]
        db.execute(
            insert(RefreshToken),
            [
                {"token_hash": idp_secrets.digest(token), "grant_id": grant_id}
                for token, grant_id in zip(tokens, grant_ids[1:], strict=True)
            ],
        )
        db.commit()
        out.refresh_tokens = tokens
        out.grant_id, out.subject = grant_ids[0], user.subject
        out.access_token = mint_access_token(app, out)

        # Accounts for the complete login (one argon2id hash at the configured
        # parameters, shared: hashing thousands would only slow the seeding).
        password_hash = svc.accounts.passwords.hash(PASSWORD)
        emails = [f"login{n}@example.com" for n in range(login_users)]
        extra = [f"user{n}@example.com" for n in range(extra_users)]
        rows = [
            {
                "email": email,
                "subject": idp_secrets.new_secret()[:32],
                "password_hash": password_hash,
                "email_verified": True,
                "mfa_required": True,
                "name": "Bench Login",
                "given_name": "Bench",
                "activated_at": clock.utcnow(),
            }
            for email in emails + extra
        ]
        for start in range(0, len(rows), 10_000):
            db.execute(insert(User), rows[start : start + 10_000])
        db.commit()
        ids = dict(db.query(User.email, User.id).filter(User.email.in_(emails)).all())
        encrypted = svc.secret_box.encrypt(TOTP_SECRET)
        db.execute(
            insert(TotpCredential),
            [
                {"user_id": ids[email], "secret_encrypted": encrypted, "last_used_step": 0}
                for email in emails
            ],
        )
        db.commit()
        out.login_emails = emails
    return out


def mint_access_token(app, seeded: Seeded) -> str:  # type: ignore[no-untyped-def]
    """A fresh access token of the seeded grant (they live 5 minutes; a long
    run needs new ones, or userinfo would measure 401s)."""
    with app.app_context():
        return app.extensions["idp"].tokens.issue_access_token(
            "bench-rs", "RS256", "openid profile email", seeded.subject, {"gid": seeded.grant_id}
        )
