"""Ending sessions everywhere: the IdP session, the grants made in it, and
every product it reached.

OpenID Connect Back-Channel Logout 1.0: each client with a
``backchannel_logout_uri`` that got a code in the session is sent a signed
logout token (``iss aud iat exp jti sub sid events``). Deliveries are rows in
SQL, sent at once from the background and retried with a doubling delay by a
sweeper thread, so a product that is down receives its token when it is back;
every attempt is recorded. Front-Channel Logout 1.0: clients with a
``frontchannel_logout_uri`` are loaded in invisible frames of the logged-out
page, with ``iss`` and ``sid``.

Cost: one user's revocation touches that user's sessions (a Redis set per
user) and grants (indexed by user and by session), never all sessions.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import requests
from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp import clock
from idp.models import LogoutDelivery
from idp.services import secrets
from idp.services.audit import Audit
from idp.services.audit import Origin
from idp.services.clients import ClientRegistry
from idp.services.keys import KeyRing
from idp.services.sessions import SessionStore
from idp.services.sessions import SsoSession
from idp.services.tokens import Tokens

if TYPE_CHECKING:
    from idp.background import Background

__all__ = ["BACKCHANNEL_EVENT", "Ended", "Logout"]

log = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type
LOGOUT_TOKEN_SECONDS = 120
#: How long one attempt may take, and how long a claimed delivery is reserved.
TIMEOUT_SECONDS = (3, 5)
CLAIM_SECONDS = 60
BATCH = 50
KEEP_DAYS = 7


@dataclass
class Ended:
    """What ending sessions set in motion."""

    sessions: int = 0
    deliveries: int = 0
    #: Front-channel logout URLs for the logged-out page to load in frames.
    frontchannel: list[str] = field(default_factory=list)


class Logout:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        tokens: Tokens,
        clients: ClientRegistry,
        keyring: KeyRing,
        audit: Audit,
        background: Background,
        issuer: str,
        retry_seconds: int,
        attempts: int,
    ) -> None:
        self.sessions = sessions
        self.tokens = tokens
        self.clients = clients
        self.keyring = keyring
        self.audit = audit
        self.background = background
        self.issuer = issuer
        self.retry_seconds = retry_seconds
        self.attempts = attempts

    # -- ending sessions ----------------------------------------------------------------
    def end_session(
        self,
        db: Session,
        sso: SsoSession,
        origin: Origin,
        *,
        actor_id: int | None = None,
        event: str = "logout",
    ) -> Ended:
        """End one IdP session: the session, the grants made in it (refresh
        tokens die, access tokens are deny-listed), and a logout sent to every
        client it reached."""
        self.sessions.revoke(sso)
        self.tokens.deny_sessions([sso.id])
        self.tokens.revoke_session_grants(db, sso.id)
        ended = self._announce(db, sso, origin, actor_id, event)
        db.commit()
        if ended.deliveries:
            self._deliver_soon()
        return ended

    def end_user(
        self, db: Session, user_id: int, origin: Origin, *, actor_id: int | None = None
    ) -> Ended:
        """End every session and grant of one user, in bulk: the sessions in one
        Redis pipeline, the grants in one statement, the logouts and audit
        events in one commit."""
        total = Ended()
        revoked = self.sessions.revoke_user(user_id)
        # Also those replaced by another login in their browser lately: a
        # code they issued makes no grant.
        replaced = self.sessions.replaced(user_id)
        self.tokens.deny_sessions([sso.id for sso in revoked] + replaced)
        for sso in revoked:
            ended = self._announce(db, sso, origin, actor_id, "session.revoked")
            total.sessions += 1
            total.deliveries += ended.deliveries
        self.tokens.revoke_user_grants(db, user_id)
        db.commit()
        if total.deliveries:
            self._deliver_soon()
        return total

    def _deliver_soon(self) -> None:
        """Send the logouts now, and keep retrying the ones that fail."""
        self.background.submit_once(self.deliver_due)
        self.background.every(self.retry_seconds, self.deliver_due)

    def _announce(
        self, db: Session, sso: SsoSession, origin: Origin, actor_id: int | None, event: str
    ) -> Ended:
        """The logouts owed to the clients an ended session reached, and its
        audit event (added to ``db``, committed by the caller)."""
        ended = Ended(sessions=1)
        for client_id in sso.clients:
            client = self.clients.get(client_id)
            if client is None:
                continue
            if client.backchannel_logout_uri:
                db.add(
                    LogoutDelivery(
                        client_id=client_id,
                        user_id=sso.user_id,
                        session_id=sso.id,
                        uri=client.backchannel_logout_uri,
                        logout_token="",  # signed at each attempt, so a retry is fresh
                    )
                )
                ended.deliveries += 1
            if client.frontchannel_logout_uri:
                query = urlencode({"iss": self.issuer, "sid": sso.id})
                separator = "&" if "?" in client.frontchannel_logout_uri else "?"
                ended.frontchannel.append(client.frontchannel_logout_uri + separator + query)
        self.audit.record(
            db,
            event,
            origin,
            subject_id=sso.user_id,
            actor_id=actor_id,
            commit=False,
            sid=sso.id,
            clients=list(sso.clients),
        )
        return ended

    def logout_token(self, delivery: LogoutDelivery) -> str:
        """A freshly signed logout token for ``delivery`` (OIDC Back-Channel
        Logout 1.0 §2.4), in the client's signing algorithm."""
        from idp.db import get_session
        from idp.models import User

        client = self.clients.get(delivery.client_id)
        alg = client.signing_alg if client else "RS256"
        user = get_session().get(User, delivery.user_id) if delivery.user_id else None
        now = clock.now()
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": delivery.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_SECONDS,
            "jti": secrets.new_secret(),
            "events": {BACKCHANNEL_EVENT: {}},
        }
        if delivery.session_id:
            claims["sid"] = delivery.session_id
        if user is not None:
            claims["sub"] = user.subject
        return self.keyring.signer(alg).sign(claims, LOGOUT_TOKEN_TYPE)

    # -- delivery -----------------------------------------------------------------------------
    def deliver_due(self) -> int:
        """Send every delivery that is due; returns how many arrived."""
        from idp.db import get_session

        db = get_session()
        now = clock.utcnow()
        due = list(
            db.scalars(
                select(LogoutDelivery)
                .where(
                    LogoutDelivery.delivered_at.is_(None),
                    LogoutDelivery.attempts < self.attempts,
                    LogoutDelivery.next_attempt_at <= now,
                )
                .order_by(LogoutDelivery.next_attempt_at)
                .limit(BATCH)
            )
        )
        # Finished rows are kept a week for the admins, then dropped.
        week_ago = now - dt.timedelta(days=KEEP_DAYS)
        db.execute(
            delete(LogoutDelivery)
            .where(
                LogoutDelivery.created_at < week_ago,
                or_(
                    LogoutDelivery.delivered_at.is_not(None),
                    LogoutDelivery.attempts >= self.attempts,
                ),
            )
            .execution_options(synchronize_session=False)
        )
        db.commit()
        delivered = 0
        for delivery in due:
            if self._claim(db, delivery, now):
                delivered += self._attempt(db, delivery)
        return delivered

    def _claim(self, db: Session, delivery: LogoutDelivery, now: dt.datetime) -> bool:
        """Reserve a delivery, so two processes do not send it at once."""
        result = db.execute(
            update(LogoutDelivery)
            .where(
                LogoutDelivery.id == delivery.id,
                LogoutDelivery.next_attempt_at == delivery.next_attempt_at,
                LogoutDelivery.delivered_at.is_(None),
            )
            .values(next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS))
        )
        db.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _attempt(self, db: Session, delivery: LogoutDelivery) -> int:
        error = None
        delivery.logout_token = self.logout_token(delivery)
        try:
            response = requests.post(
                delivery.uri,
                data={"logout_token": delivery.logout_token},
                timeout=TIMEOUT_SECONDS,
                allow_redirects=False,
            )
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except requests.RequestException as failure:
            error = type(failure).__name__
        delivery.attempts += 1
        origin = Origin()
        if error is None:
            delivery.delivered_at = clock.utcnow()
            delivery.last_error = None
            db.commit()
            self.audit.record(
                db,
                "logout.delivered",
                origin,
                subject_id=delivery.user_id,
                client_id=delivery.client_id,
                attempts=delivery.attempts,
            )
            return 1
        delay = self.retry_seconds * 2 ** (delivery.attempts - 1)
        delivery.next_attempt_at = clock.utcnow() + dt.timedelta(seconds=delay)
        delivery.last_error = error[:300]
        db.commit()
        self.audit.record(
            db,
            "logout.failed",
            origin,
            subject_id=delivery.user_id,
            client_id=delivery.client_id,
            attempts=delivery.attempts,
            error=error,
            final=delivery.attempts >= self.attempts,
        )
        log.warning("back-channel logout to %s failed: %s", delivery.client_id, error)
        return 0
