"""Browser single sign-on sessions in Redis.

The cookie holds a random secret; Redis holds the session under the secret's
SHA-256, so a Redis dump does not hand out live cookies. The public session id
(the ``sid`` claim) is a different random value. A per-user set indexes each
user's sessions, so revoking them costs O(that user's sessions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field

from idp import clock
from idp.services import secrets
from idp.store import Store

__all__ = ["SessionStore", "SsoSession"]

#: ``last_seen`` is written back at most this often, to keep SSO reads cheap.
TOUCH_INTERVAL_SECONDS = 60


@dataclass
class SsoSession:
    #: The public session id, sent as ``sid`` in ID tokens.
    id: str
    user_id: int
    auth_time: int
    amr: list[str]
    acr: str
    created_at: int
    last_seen: int
    #: The clients that received a code within this session.
    clients: list[str] = field(default_factory=list)
    #: When each client first received a code within this session.
    reached: dict[str, int] = field(default_factory=dict)
    #: Where the login came from (shown to admins).
    ip: str | None = None
    user_agent: str | None = None
    #: Digest of the cookie secret: the Redis key of this session.
    key: str = ""
    #: Whether it is in Redis (a new session may be written with its first
    #: client, in one round trip). Not stored.
    saved: bool = True

    def to_json(self) -> str:
        """What Redis stores (``saved`` left out)."""
        fields = dict(vars(self))  # plain fields: no deep copy needed
        del fields["saved"]
        return json.dumps(fields)


class SessionStore:
    def __init__(
        self, store: Store, idle_seconds: int, absolute_seconds: int, code_seconds: int = 60
    ) -> None:
        self.store = store
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        #: How long a session replaced by another login in its browser is
        #: remembered for its user: as long as a code it issued can live.
        self.replaced_memory_seconds = code_seconds + 1

    def _ttl(self, session: SsoSession, now: int) -> int:
        return min(self.idle_seconds, session.created_at + self.absolute_seconds - now)

    def _write(self, session: SsoSession, now: int, *, create: bool = False) -> bool:
        """Store the session with its ``sid`` and its place in the user's
        index, in one transaction. An update only rewrites a session that
        still exists (``XX``, its ``sid`` likewise; a revocation removes both
        at once), so a request that read it before a revocation cannot bring
        it back; returns whether it was written."""
        ttl = self._ttl(session, now)
        if ttl <= 0:
            return False
        payload = session.to_json()
        sess_key = self.store.key("sess", session.key)
        sid_key = self.store.key("sid", session.id)
        user_index = self.store.key("usess", str(session.user_id))
        if create:
            written, *_ = self.store.transaction(
                ("SET", sess_key, payload, "EX", ttl, "NX"),
                ("SET", sid_key, session.key, "EX", ttl),
                ("SADD", user_index, session.key),
                ("EXPIRE", user_index, self.absolute_seconds),
            )
        else:
            written, *_ = self.store.transaction(
                ("SET", sess_key, payload, "EX", ttl, "XX"),
                ("SET", sid_key, session.key, "EX", ttl, "XX"),
                ("EXPIRE", user_index, self.absolute_seconds),
            )
        return written is not None

    def create(
        self,
        user_id: int,
        amr: list[str],
        acr: str,
        auth_time: int,
        ip: str | None = None,
        user_agent: str | None = None,
        *,
        save: bool = True,
    ) -> tuple[str, SsoSession]:
        """Start a session; returns the cookie secret and the session. With
        ``save`` false it is written by the first :meth:`add_client`, or by
        :meth:`save`; until then it exists only in this request."""
        cookie = secrets.new_secret()
        now = clock.now()
        session = SsoSession(
            id=secrets.new_secret(),
            user_id=user_id,
            auth_time=auth_time,
            amr=amr,
            acr=acr,
            created_at=now,
            last_seen=now,
            key=secrets.digest(cookie),
            ip=ip,
            user_agent=(user_agent or "")[:200] or None,
            saved=False,
        )
        if save:
            self.save(session)
        return cookie, session

    def save(self, session: SsoSession) -> bool:
        """Write a session made with ``save`` false, if not written yet."""
        if session.saved:
            return True
        session.saved = True
        return self._write(session, clock.now(), create=True)

    def get(self, cookie: str | None) -> SsoSession | None:
        """The live session of this cookie, its idle timer refreshed."""
        if not cookie:
            return None
        key = secrets.digest(cookie)
        raw = self.store.call("GET", self.store.key("sess", key))
        if raw is None:
            return None
        session = SsoSession(**json.loads(raw))
        now = clock.now()
        if now >= session.created_at + self.absolute_seconds or (
            now >= session.last_seen + self.idle_seconds
        ):
            self.revoke(session)
            return None
        if now - session.last_seen >= TOUCH_INTERVAL_SECONDS:
            session.last_seen = now
            if not self._write(session, now):
                return None  # revoked meanwhile
        return session

    def add_client(self, session: SsoSession, client_id: str) -> bool:
        """Note that ``client_id`` got a code in this session (written only the
        first time, so a repeated login into one client costs no write).
        Returns False when the session has ended meanwhile."""
        if client_id in session.clients:
            return True
        now = clock.now()
        session.clients.append(client_id)
        session.reached[client_id] = now
        if not session.saved:
            return self.save(session)  # a new session, with its first client
        return self._write(session, now)

    def by_id(self, session_id: str) -> SsoSession | None:
        """The live session with this public id (``sid``)."""
        key = self.store.redis.get(self.store.key("sid", session_id))
        if key is None:
            return None
        raw = self.store.redis.get(self.store.key("sess", key.decode()))
        return SsoSession(**json.loads(raw)) if raw else None

    def for_user(self, user_id: int) -> list[SsoSession]:
        keys = self.store.redis.smembers(self.store.key("usess", str(user_id)))
        if not keys:
            return []
        names = [self.store.key("sess", k.decode()) for k in keys]
        return [SsoSession(**json.loads(raw)) for raw in self.store.redis.mget(names) if raw]

    def revoke(self, session: SsoSession) -> None:
        self.store.transaction(
            ("DEL", self.store.key("sess", session.key), self.store.key("sid", session.id)),
            ("SREM", self.store.key("usess", str(session.user_id)), session.key),
        )

    def replace(self, session: SsoSession) -> None:
        """End a session because another login in its browser takes its
        place. It is not a logout (its grants and tokens live on), but a code
        it issued could still be exchanged: its id is remembered for its
        user, so that ending all of the user's sessions ends those codes too
        (:meth:`replaced`)."""
        replaced = self.store.key("usess-replaced", str(session.user_id))
        self.store.transaction(
            ("DEL", self.store.key("sess", session.key), self.store.key("sid", session.id)),
            ("SREM", self.store.key("usess", str(session.user_id)), session.key),
            ("SADD", replaced, session.id),
            ("EXPIRE", replaced, self.replaced_memory_seconds),
        )

    def replaced(self, user_id: int) -> list[str]:
        """The ids of the user's sessions replaced lately (see :meth:`replace`);
        they are forgotten when their codes can no longer live."""
        ids = self.store.call("SMEMBERS", self.store.key("usess-replaced", str(user_id)))
        return sorted(i.decode() for i in ids)

    def revoke_user(self, user_id: int) -> list[SsoSession]:
        """End every session of one user."""
        sessions = self.for_user(user_id)
        pipe = self.store.redis.pipeline(transaction=False)
        for session in sessions:
            pipe.delete(self.store.key("sess", session.key), self.store.key("sid", session.id))
        pipe.delete(self.store.key("usess", str(user_id)))
        pipe.execute()
        return sessions
