"""Remembered consent: which scopes a user has granted a client."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Consent

__all__ = ["Consents"]


class Consents:
    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def covers(self, session: Session, user_id: int, client_id: str, scopes: Iterable[str]) -> bool:
        """Whether the user already granted the client every one of ``scopes``."""
        granted = session.scalar(
            select(Consent.scopes).where(Consent.user_id == user_id, Consent.client_id == client_id)
        )
        return granted is not None and set(scopes) <= set(granted)

    def grant(self, session: Session, user_id: int, client_id: str, scopes: Iterable[str]) -> None:
        """Remember the consent, adding to what was granted before."""
        row = session.scalar(
            select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
        )
        if row is None:
            session.add(Consent(user_id=user_id, client_id=client_id, scopes=sorted(set(scopes))))
        else:
            row.scopes = sorted(set(row.scopes) | set(scopes))
        session.commit()
