"""The services of one app, built once by the factory and shared by all requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from idp.background import Background
    from idp.config import Settings
    from idp.oidc.server import OpenIDServer
    from idp.services.accounts import Accounts
    from idp.services.actions import ActionTokens
    from idp.services.audit import Audit
    from idp.services.clients import ClientRegistry
    from idp.services.consents import Consents
    from idp.services.crypto import SecretBox
    from idp.services.factors import Factors
    from idp.services.flows import FlowStore
    from idp.services.keys import KeyRing
    from idp.services.keys import KeyStore
    from idp.services.lockout import Lockout
    from idp.services.logout import Logout
    from idp.services.mail import Mailer
    from idp.services.passkeys import Passkeys
    from idp.services.password_policy import PasswordPolicy
    from idp.services.ratelimit import RateLimiter
    from idp.services.sessions import SessionStore
    from idp.services.sms import SmsChallenges
    from idp.services.sms import SmsSender
    from idp.services.tokens import Tokens
    from idp.store import Store

__all__ = ["Services", "services"]


@dataclass
class Services:
    settings: Settings
    store: Store
    keystore: KeyStore
    keyring: KeyRing
    clients: ClientRegistry
    accounts: Accounts
    consents: Consents
    tokens: Tokens
    flows: FlowStore
    sessions: SessionStore
    server: OpenIDServer
    actions: ActionTokens
    factors: Factors
    secret_box: SecretBox
    password_policy: PasswordPolicy
    mailer: Mailer
    sms_sender: SmsSender
    sms: SmsChallenges
    limiter: RateLimiter
    lockout: Lockout
    audit: Audit
    background: Background
    passkeys: Passkeys
    logout: Logout


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions["idp"]
    return found
