"""The second factors a user has enrolled: passkeys and security keys,
authenticator app, SMS number, emergency code. Secrets are encrypted (TOTP) or
hashed (emergency code); WebAuthn keys are public keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Exists
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.models import RecoveryCode
from idp.models import TotpCredential
from idp.models import User
from idp.models import WebAuthnCredential
from idp.services import recovery
from idp.services import totp
from idp.services.crypto import SecretBox

__all__ = ["ENROLLED_COLUMNS", "TOTP_COLUMNS", "Factors", "Method"]

# The statements of every login, built once (building one costs more than
# sending it): which factors a user has, the app's secret, its step written.
_USER = bindparam("user")


def _enrolled(user_id: Any) -> tuple[Exists, Exists, Exists]:
    return (
        exists().where(WebAuthnCredential.user_id == user_id),
        exists().where(TotpCredential.user_id == user_id),
        exists().where(RecoveryCode.user_id == user_id),
    )


_ENROLLED = select(*_enrolled(_USER))
#: Which factors the user of a query has, as three more columns of it (for
#: :meth:`Factors.methods`' ``enrolled``).
ENROLLED_COLUMNS = _enrolled(User.id)
#: The app's secret and the time step of the last code it accepted.
TOTP_COLUMNS = (TotpCredential.secret_encrypted, TotpCredential.last_used_step)
_TOTP = select(*TOTP_COLUMNS).where(TotpCredential.user_id == _USER)
_TOTP_STEP = (
    update(TotpCredential)
    .where(
        TotpCredential.user_id == _USER,
        or_(
            TotpCredential.last_used_step.is_(None),
            TotpCredential.last_used_step < bindparam("step"),
        ),
    )
    .values(last_used_step=bindparam("new_step"))
)


class Method:
    """Second-factor methods, as listed under "Prøv en anden måde"."""

    WEBAUTHN = "webauthn"
    TOTP = "totp"
    SMS = "sms"
    RECOVERY = "recovery"


class Factors:
    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def methods(
        self, session: Session, user: User, enrolled: tuple[Any, ...] | None = None
    ) -> list[str]:
        """The methods ``user`` has enrolled, in order of preference;
        ``enrolled``: the :data:`ENROLLED_COLUMNS` of ``user``, read already."""
        if enrolled is None:  # one round trip
            enrolled = tuple(session.connection().execute(_ENROLLED, {"user": user.id}).one())
        webauthn, app, recovery_code = enrolled
        found = []
        if webauthn:
            found.append(Method.WEBAUTHN)
        if app:
            found.append(Method.TOTP)
        if user.phone_number and user.phone_number_verified:
            found.append(Method.SMS)
        if recovery_code:
            found.append(Method.RECOVERY)
        return found

    def has_second_factor(self, session: Session, user: User) -> bool:
        return bool(set(self.methods(session, user)) & {Method.WEBAUTHN, Method.TOTP, Method.SMS})

    def save_totp(self, session: Session, user_id: int, secret: str, used_step: int) -> None:
        """Store a confirmed authenticator app, replacing an earlier one."""
        session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
        session.add(
            TotpCredential(
                user_id=user_id,
                secret_encrypted=self.box.encrypt(secret),
                last_used_step=used_step,
            )
        )
        session.commit()

    def verify_totp(
        self, session: Session, user_id: int, code: str, app: tuple[Any, ...] | None = None
    ) -> None:
        """Check a code from the user's app and record its time step on the
        caller's session (in its transaction, which the caller commits; on a
        reader, committed at once). The step is written only
        over an older one, so of concurrent requests with one code only the
        first to write is accepted. ``app``: the app's :data:`TOTP_COLUMNS`,
        read already (``None`` in them: no app).

        :raises totp.InvalidCodeError: (or a subclass) when the code is refused.
        """
        connection = session.connection()  # plain rows: no ORM layer needed
        if app is None:
            app = tuple(connection.execute(_TOTP, {"user": user_id}).first() or (None, None))
        secret_encrypted, last_used_step = app
        if secret_encrypted is None:
            raise totp.InvalidCodeError("no authenticator app enrolled")
        step = totp.verify(self.box.decrypt(secret_encrypted), code, last_used_step)
        written = connection.execute(_TOTP_STEP, {"user": user_id, "step": step, "new_step": step})
        if written.rowcount != 1:  # type: ignore[attr-defined]
            raise totp.CodeReusedError("accepted meanwhile by another request")

    def save_recovery_code(self, session: Session, user_id: int, code: str) -> None:
        """Keep (the hash of) a new emergency code; the previous one stops working."""
        row = session.get(RecoveryCode, user_id)
        if row is None:
            session.add(RecoveryCode(user_id=user_id, code_hash=recovery.hash_code(code)))
        else:
            row.code_hash = recovery.hash_code(code)
        session.commit()

    def remove_all(self, session: Session, user_id: int) -> None:
        """Turn two-step verification off: the app, the passkeys and security
        keys and the emergency code are forgotten, and the phone number (a
        profile field too) no longer gets codes."""
        session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        session.execute(delete(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id))
        user = session.get(User, user_id)
        if user is not None:
            user.phone_number_verified = False
        session.commit()

    def use_recovery_code(self, session: Session, user_id: int, code: str) -> bool:
        """Accept the emergency code once: it is deleted in the same transaction."""
        row = session.scalar(
            select(RecoveryCode).where(RecoveryCode.user_id == user_id).with_for_update()
        )
        if row is None or not recovery.verify_code(code, row.code_hash):
            session.rollback()
            return False
        session.delete(row)
        session.commit()
        return True
