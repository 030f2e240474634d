"""WebAuthn: passkeys and security keys, on py_webauthn.

Ceremonies are two steps: options (with a random challenge kept in Redis for
a few minutes under a key the caller names, e.g. the login flow) and the
browser's answer, verified against that challenge, which is taken with
``GETDEL`` so it works once. Credentials are looked up by their id (a unique
index), never by trying each. A sign count that does not grow is a cloned
authenticator: refused and reported to the caller for the audit log.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import generate_authentication_options
from webauthn import generate_registration_options
from webauthn import options_to_json
from webauthn import verify_authentication_response
from webauthn import verify_registration_response
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse
from webauthn.helpers.exceptions import InvalidCBORData
from webauthn.helpers.exceptions import InvalidJSONStructure
from webauthn.helpers.exceptions import InvalidRegistrationResponse
from webauthn.helpers.structs import AttestationConveyancePreference
from webauthn.helpers.structs import AuthenticatorSelectionCriteria
from webauthn.helpers.structs import AuthenticatorTransport
from webauthn.helpers.structs import CredentialDeviceType
from webauthn.helpers.structs import PublicKeyCredentialDescriptor
from webauthn.helpers.structs import ResidentKeyRequirement
from webauthn.helpers.structs import UserVerificationRequirement

from idp.clock import utcnow
from idp.models import User
from idp.models import WebAuthnCredential
from idp.store import Store

__all__ = [
    "CeremonyError",
    "ClonedAuthenticatorError",
    "Passkeys",
    "Verified",
]

CHALLENGE_SECONDS = 300
#: How long the browser may take (milliseconds), as told to it.
TIMEOUT_MS = 120_000
KNOWN_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class CeremonyError(Exception):
    """The browser's answer does not verify (or its challenge is spent or expired)."""


class ClonedAuthenticatorError(CeremonyError):
    """The signature is right but the sign count went backwards: two copies of
    one authenticator exist."""

    def __init__(self, credential: WebAuthnCredential) -> None:
        super().__init__("sign count did not increase")
        self.credential = credential


@dataclass(frozen=True)
class Verified:
    """A successful assertion: whose key it was, and what it proved."""

    user: User
    credential: WebAuthnCredential
    user_verified: bool

    @property
    def amr(self) -> str:
        """RFC 8176: ``swk`` for a key that may be synced between devices (a
        software-held passkey), ``hwk`` for one bound to its hardware."""
        return "swk" if self.credential.backup_eligible else "hwk"


class Passkeys:
    def __init__(
        self,
        store: Store,
        rp_id: str,
        rp_name: str,
        origins: list[str],
        attestation: str = "none",
    ) -> None:
        self.store = store
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origins = origins
        self.attestation = AttestationConveyancePreference(attestation)

    # -- challenges ------------------------------------------------------------------
    def _challenge_key(self, scope: str) -> str:
        return self.store.key("webauthn", scope)

    def _new_challenge(self, scope: str, require_uv: bool) -> bytes:
        challenge = secrets.token_bytes(32)
        record = json.dumps({"c": bytes_to_base64url(challenge), "uv": require_uv})
        self.store.call("SET", self._challenge_key(scope), record, "EX", CHALLENGE_SECONDS)
        return challenge

    def _take_challenge(self, scope: str) -> tuple[bytes, bool]:
        raw = self.store.redis.getdel(self._challenge_key(scope))
        if raw is None:
            raise CeremonyError("no challenge: expired or already used")
        record = json.loads(raw)
        return _from_base64url(record["c"]), bool(record["uv"])

    # -- registration ------------------------------------------------------------------
    def registration_options(self, session: Session, user: User, scope: str) -> str:
        """Options for ``navigator.credentials.create()`` as JSON. The user's
        existing keys are excluded; a discoverable key with user verification
        is asked for, so it can log in on its own."""
        if user.webauthn_handle is None:
            user.webauthn_handle = bytes_to_base64url(secrets.token_bytes(32))
            session.commit()
        existing = self.credentials(session, user.id)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=_from_base64url(user.webauthn_handle),
            user_name=user.email,
            user_display_name=user.name or user.email,
            challenge=self._new_challenge(scope, require_uv=True),
            timeout=TIMEOUT_MS,
            attestation=self.attestation,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[_descriptor(c) for c in existing],
        )
        return options_to_json(options)

    def register(
        self,
        session: Session,
        user: User,
        scope: str,
        response: str,
        name: str,
        *,
        commit: bool = True,
    ) -> WebAuthnCredential:
        """Verify the browser's answer to :meth:`registration_options` and keep the key.

        :param commit: False leaves the new key in the caller's transaction.
        :raises CeremonyError: it does not verify, or the key is already registered.
        """
        challenge, require_uv = self._take_challenge(scope)
        try:
            verified = verify_registration_response(
                credential=response,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                require_user_verification=require_uv,
            )
        except (InvalidRegistrationResponse, InvalidJSONStructure, InvalidCBORData) as error:
            raise CeremonyError(str(error)) from error
        credential_id = bytes_to_base64url(verified.credential_id)
        if self.find(session, credential_id) is not None:
            raise CeremonyError("this key is already registered")
        transports = _transports(response)
        credential = WebAuthnCredential(
            user_id=user.id,
            credential_id=credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=transports,
            aaguid=str(verified.aaguid),
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            user_verified=verified.user_verified,
            name=name.strip()[:100],
        )
        session.add(credential)
        if commit:
            session.commit()
        else:
            session.flush()
        return credential

    # -- authentication ----------------------------------------------------------------
    def authentication_options(self, session: Session, scope: str, user: User | None = None) -> str:
        """Options for ``navigator.credentials.get()`` as JSON.

        Without ``user``: a passwordless login with any discoverable key of
        this site, user verification required (the key is both factors).
        With ``user``: the second factor after the password, limited to that
        user's keys; user presence is enough.
        """
        allow = [_descriptor(c) for c in self.credentials(session, user.id)] if user else []
        require_uv = user is None
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=self._new_challenge(scope, require_uv=require_uv),
            timeout=TIMEOUT_MS,
            allow_credentials=allow,
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if require_uv
                else UserVerificationRequirement.PREFERRED
            ),
        )
        return options_to_json(options)

    def authenticate(
        self, session: Session, scope: str, response: str, user: User | None = None
    ) -> Verified:
        """Verify the browser's answer to :meth:`authentication_options`.

        :param user: the user who typed their password (second factor), or
            None (passwordless: the key names its user by the user handle).
        :raises ClonedAuthenticatorError: a valid signature with a sign count
            that did not grow.
        :raises CeremonyError: anything else that does not verify.
        """
        challenge, require_uv = self._take_challenge(scope)
        try:
            parsed = parse_authentication_credential_json(response)
        except (InvalidJSONStructure, InvalidAuthenticationResponse, ValueError) as error:
            raise CeremonyError(str(error)) from error
        credential = self.find(session, bytes_to_base64url(parsed.raw_id))
        if credential is None:
            raise CeremonyError("unknown key")
        owner = session.get(User, credential.user_id)
        if owner is None or not owner.is_active:
            raise CeremonyError("the key's account is disabled")
        if user is not None and owner.id != user.id:
            raise CeremonyError("the key belongs to another account")
        handle = parsed.response.user_handle
        if handle is not None and bytes_to_base64url(handle) != owner.webauthn_handle:
            raise CeremonyError("the key names another account")
        try:
            # The count is compared below, after the signature, so a forged
            # answer cannot pass itself off as a cloned key.
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                credential_public_key=credential.public_key,
                credential_current_sign_count=0,
                require_user_verification=require_uv,
            )
        except (InvalidAuthenticationResponse, InvalidJSONStructure, InvalidCBORData) as error:
            raise CeremonyError(str(error)) from error
        new_count = verified.new_sign_count
        if (new_count or credential.sign_count) and new_count <= credential.sign_count:
            raise ClonedAuthenticatorError(credential)
        credential.sign_count = new_count
        credential.backed_up = verified.credential_backed_up
        credential.last_used_at = utcnow()
        session.commit()
        return Verified(owner, credential, verified.user_verified)

    # -- the user's keys ------------------------------------------------------------------
    def credentials(self, session: Session, user_id: int) -> list[WebAuthnCredential]:
        query = select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id)
        return list(session.scalars(query.order_by(WebAuthnCredential.id)))

    def find(self, session: Session, credential_id: str) -> WebAuthnCredential | None:
        query = select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential_id)
        return session.scalar(query)


def _descriptor(credential: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in credential.transports if t in KNOWN_TRANSPORTS]
    return PublicKeyCredentialDescriptor(
        id=_from_base64url(credential.credential_id), transports=transports or None
    )


def _transports(response: str) -> list[str]:
    """The transports the browser reported for a new key (only known names)."""
    try:
        data: Any = json.loads(response)
        found = data.get("response", {}).get("transports") or []
    except (ValueError, AttributeError):
        return []
    return [t for t in found if isinstance(t, str) and t in KNOWN_TRANSPORTS][:8]


def _from_base64url(value: str) -> bytes:
    return base64url_to_bytes(value)
