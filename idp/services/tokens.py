"""Tokens: authorization codes, JWT access tokens, refresh grants, revocation.

* Authorization codes live in Redis under their SHA-256 and are consumed with
  ``GETDEL``, so two exchanges of one code cannot both succeed. A consumed code
  leaves a marker naming the grant it produced; a second exchange revokes that
  grant (RFC 6749 §4.1.2).
* Access tokens are JWTs (RFC 9068), verified without a database. Revoked ones
  are deny-listed in Redis until they expire: by ``jti`` for one token, by
  grant id for every token of a grant, by session id (``sid``) for every
  token of an ended SSO session, and by subject with a time for every token
  of a user issued until all of the user's sessions and grants were ended;
  the last two whether or not the grant's row is still there to be found.
* Refresh tokens are opaque, stored hashed in SQL, and rotated on every use;
  presenting a rotated one revokes the whole grant (OAuth 2.0 Security BCP §4.14).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets as std_secrets
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from idp import clock
from idp.models import Grant
from idp.models import RefreshToken
from idp.models import User
from idp.services import secrets
from idp.services.claims import CLAIMS_BY_SCOPE
from idp.services.keys import ALGORITHMS
from idp.services.keys import KeyRing
from idp.store import Store

__all__ = [
    "AccessToken",
    "CodeData",
    "InvalidTokenError",
    "Tokens",
    "aware",
    "new_grant_id",
]

#: How long a consumed code is remembered, to detect its replay.
USED_CODE_MEMORY_SECONDS = 600
#: Access tokens whose verified claims a process remembers (about 2 kB each).
VERIFIED_TOKENS_REMEMBERED = 4096
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret


class InvalidTokenError(Exception):
    """The token is malformed, not ours, expired or revoked."""


@dataclass
class CodeData:
    """What an authorization code stands for; implements Authlib's code mixin."""

    client_id: str
    redirect_uri: str
    scope: str
    user_id: int
    session_id: str
    auth_time: int
    acr: str
    amr: list[str]
    expires_at: int
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return self.amr


@dataclass
class AccessToken:
    """A verified access token's claims, as introspection and UserInfo see them."""

    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def grant_id(self) -> str | None:
        return self.claims.get("gid")

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    @property
    def scope(self) -> str:
        return str(self.claims.get("scope", ""))


class Tokens:
    """Issues, verifies and revokes tokens."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        session_factory: Callable[[], Session],
        issuer: str,
        access_token_seconds: int,
        refresh_token_seconds: int,
        code_seconds: int,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self._session_factory = session_factory
        self.issuer = issuer
        self.access_token_seconds = access_token_seconds
        self.refresh_token_seconds = refresh_token_seconds
        self.code_seconds = code_seconds
        #: The key set, and the claims of access tokens whose signature it passed.
        self._verified: tuple[object, dict[str, dict[str, Any]]] = (None, {})

    # -- authorization codes --------------------------------------------------
    def save_code(self, code: str, data: CodeData) -> None:
        self.store.call(
            "SET",
            self.store.key("code", secrets.digest(code)),
            json.dumps(vars(data)),
            "EX",
            self.code_seconds,
        )

    def peek_code(self, code: str) -> CodeData | None:
        """What a live code stands for, leaving it unused (a request that will
        not be answered with tokens must not spend it)."""
        raw = self.store.call("GET", self.store.key("code", secrets.digest(code)))
        if raw is None:
            return None
        data = CodeData(**json.loads(raw))
        return data if clock.now() < data.expires_at else None

    def claim_code(self, code: str, grant_id: str, data: CodeData, subject: str) -> bool:
        """Consume a code checked with :meth:`peek_code` whose grant is already
        recorded, and mark it used by that grant, in one atomic step; False
        when the code went meanwhile (taken by another exchange, or expired),
        or when, given its ``data`` and its user's ``subject``, it has
        outlived its login (:meth:`_login_ended`): that code is spent all the
        same and marked, so that the full path takes the exchange for a replay
        and ends the grant.

        The mark is set only if none is there: a concurrent exchange that took
        the code first keeps its own.
        """
        digest = secrets.digest(code)
        raw, _, ended = self.store.transaction(
            ("GETDEL", self.store.key("code", digest)),
            (
                "SET",
                self.store.key("code-used", digest),
                grant_id,
                "EX",
                USED_CODE_MEMORY_SECONDS,
                "NX",
            ),
            ("MGET", *self._login_ended_keys(data, subject)),
        )
        return raw is not None and not self._login_ended(data, ended)

    def _login_ended_keys(self, data: CodeData, subject: str) -> list[str]:
        return [self._ended_session_key(data.session_id or "-"), self._user_cutoff_key(subject)]

    @staticmethod
    def _login_ended(data: CodeData, found: list[Any]) -> bool:
        """Whether a code's login has ended since the code was issued, from
        the values of :meth:`_login_ended_keys`: its SSO session ended (logged
        out or revoked), or all of its user's sessions were ended after the
        login (the code of a session that had already left the user's index,
        replaced by another login in its browser): such a code makes no
        grant."""
        session_ended, cutoff = found
        # Whole seconds, as for access tokens: a login in the very second of
        # the cutoff may be the first one after it.
        return bool(session_ended) or (cutoff is not None and data.auth_time < int(cutoff))

    @property
    def _login_ending_seconds(self) -> int:
        """How long a session's or a user's ending is kept: until the access
        tokens and the codes it covers have expired."""
        return max(self.access_token_seconds, self.code_seconds)

    def _ended_session_key(self, session_id: str) -> str:
        return self.store.key("deny", "sid", session_id)

    def _user_cutoff_key(self, subject: str) -> str:
        return self.store.key("deny", "sub", subject)

    def consume_code(self, code: str) -> tuple[CodeData | None, str | None]:
        """Take the code out of the store, atomically.

        Returns ``(data, grant_id)``: ``data`` when this call consumed a live
        code, and the id to give the grant it produces; or ``(None, grant_id)``
        when the code was already used and produced that grant; or ``(None,
        None)`` for an unknown code.
        """
        digest = secrets.digest(code)
        used_key = self.store.key("code-used", digest)
        grant_id = new_grant_id()
        # One transaction: a replay at any moment finds either the code or
        # the mark naming the grant it produced.
        raw, previous, marked = self.store.transaction(
            ("GETDEL", self.store.key("code", digest)),
            ("GET", used_key),
            ("SET", used_key, grant_id, "EX", USED_CODE_MEMORY_SECONDS, "NX"),
        )
        if raw is None:
            if marked is not None:  # an unknown code: no mark for it
                self.store.call("DEL", used_key)
            return None, previous.decode() if previous else None
        if marked is None:  # marked already, so never this call's to spend
            return None, previous.decode() if previous else None
        data = CodeData(**json.loads(raw))
        if clock.now() >= data.expires_at:
            return None, None
        return data, grant_id

    # -- access tokens --------------------------------------------------------
    def issue_access_token(
        self,
        client_id: str,
        alg: str,
        scope: str,
        subject: str,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Sign a JWT access token (RFC 9068 §2)."""
        now = clock.now()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": client_id,
            "client_id": client_id,
            "iat": now,
            "exp": now + self.access_token_seconds,
            "jti": secrets.new_secret(),
            "scope": scope,
        }
        if extra:
            claims.update(extra)
        return self.keyring.signer(alg).sign(claims, ACCESS_TOKEN_TYPE)

    def verify_access_token(self, token: str) -> AccessToken:
        """Check signature, type, issuer, expiry and the deny-list (one Redis call).

        A token's signature, type and issuer are facts of its bytes, so the
        claims of a token that passed are remembered per process (a resource
        server presents the same token with every call) until the key ring
        changes (a compromised key withdrawn stops its tokens at once); expiry
        and the deny-list are checked on every call.
        """
        claims = self._signed_claims(token)
        if not isinstance(claims.get("exp"), int) or clock.now() >= claims["exp"]:
            raise InvalidTokenError("expired")
        keys = [self.store.key("deny", "jti", str(claims["jti"]))]
        if claims.get("gid"):
            keys.append(self.store.key("deny", "grant", str(claims["gid"])))
        if claims.get("sid"):
            keys.append(self._ended_session_key(str(claims["sid"])))
        if not claims.get("gid"):
            cutoff = None
            denied = self.store.call("MGET", *keys)
        else:  # a user's: all of the user's tokens may have been ended since
            keys.append(self._user_cutoff_key(str(claims["sub"])))
            *denied, cutoff = self.store.call("MGET", *keys)
        # The cutoff is a whole second, like ``iat``: a token of that very
        # second may come from a login after the ending (a new password's
        # first login), so it is judged by its session's and grant's entries.
        if any(denied) or (cutoff is not None and int(claims.get("iat", 0)) < int(cutoff)):
            raise InvalidTokenError("revoked")
        return AccessToken(claims)

    def _signed_claims(self, token: str) -> dict[str, Any]:
        keyset = self.keyring.keyset
        # The memory belongs to one key set; a check that began with an older
        # set writes into that set's memory, never into the current one.
        remembered_with, remembered = self._verified
        if remembered_with is not keyset:
            remembered = {}
            self._verified = (keyset, remembered)
        claims = remembered.get(token)
        if claims is not None:
            return claims
        try:
            decoded = jwt.decode(token, keyset, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError) as error:
            raise InvalidTokenError("malformed or badly signed") from error
        if decoded.header.get("typ", "").lower() not in (ACCESS_TOKEN_TYPE, "application/at+jwt"):
            raise InvalidTokenError("not an access token")
        claims = decoded.claims
        if claims.get("iss") != self.issuer or "jti" not in claims:
            raise InvalidTokenError("not issued here")
        if len(remembered) >= VERIFIED_TOKENS_REMEMBERED:
            remembered.clear()
        remembered[token] = claims
        return claims

    def deny_access_token(self, token: AccessToken) -> None:
        ttl = int(token.claims["exp"]) - clock.now()
        if ttl > 0:
            self.store.redis.set(self.store.key("deny", "jti", token.jti), 1, ex=ttl)

    def peek_id_token(self, token: str) -> dict[str, Any] | None:
        """Claims of an ID token signed by one of our published keys, expired or
        not (an ``id_token_hint`` may be expired, OIDC Core §3.1.2.1)."""
        try:
            decoded = jwt.decode(token, self.keyring.keyset, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError):
            return None
        if decoded.header.get("typ", "JWT") != "JWT" or decoded.claims.get("iss") != self.issuer:
            return None
        return dict(decoded.claims)

    # -- grants and refresh tokens -------------------------------------------
    def create_grant(self, session: Session, grant_id: str, code: CodeData, subject: str) -> bool:
        """Record the grant a code produces, as soon as the code is consumed;
        False (the grant revoked at once) when the code's login has ended
        (:meth:`_login_ended`).

        A replay of the code revokes this row; a replay that came before the row
        existed left the grant's deny-list entry, which is honoured here. Both
        are asked after the commit, in one ``MGET``: an ending that began
        earlier has set its deny-list entries before revoking grants, so the
        grant is either among the ones it revokes or meets its entries here.
        """
        grant = Grant(
            id=grant_id,
            user_id=code.user_id,
            client_id=code.client_id,
            scope=code.scope,
            session_id=code.session_id,
            auth_time=code.auth_time,
            acr=code.acr,
            amr=code.amr,
            expires_at=clock.utcnow() + dt.timedelta(seconds=self.refresh_token_seconds),
        )
        session.add(grant)
        session.commit()
        replayed, *ended = self.store.call(
            "MGET",
            self.store.key("deny", "grant", grant_id),
            *self._login_ended_keys(code, subject),
        )
        login_ended = self._login_ended(code, ended)
        if replayed or login_ended:
            self.revoke_grant(session, grant_id)
        return not login_ended

    def create_grant_in_one_statement(
        self, dbapi_connection: Any, grant_id: str, code: CodeData, refresh_token: str | None
    ) -> Any:
        """What :meth:`create_grant` and :meth:`add_refresh_token` do, in one
        atomic statement prepared by psycopg (PostgreSQL), for an active user
        only; returns the user's columns that claims are made of (as
        :meth:`userinfo_subject`), or ``None`` (nothing recorded) when the user
        is gone or disabled."""
        now = clock.utcnow()
        values = {
            "grant_id": grant_id,
            "user_id": code.user_id,
            "client_id": code.client_id,
            "scope": code.scope,
            "session_id": code.session_id,
            "auth_time": code.auth_time,
            "acr": code.acr,
            "amr": Json(code.amr),
            "now": now,
            "expires_at": now + dt.timedelta(seconds=self.refresh_token_seconds),
        }
        if refresh_token is None:
            return _prepared_row(dbapi_connection, NEW_GRANT_SQL, values)
        values["refresh_hash"] = secrets.digest(refresh_token)
        return _prepared_row(dbapi_connection, NEW_GRANT_WITH_REFRESH_TOKEN_SQL, values)

    def add_refresh_token(self, session: Session, grant_id: str) -> str:
        """The first refresh token of a grant."""
        refresh_token = secrets.new_secret()
        session.add(RefreshToken(token_hash=secrets.digest(refresh_token), grant_id=grant_id))
        session.commit()
        return refresh_token

    def find_refresh_token(
        self, session: Session, token: str
    ) -> tuple[RefreshToken, Grant, User] | None:
        """The refresh token row, its grant and the grant's user, in one query,
        if the token is known (used or not)."""
        row = session.execute(
            select(RefreshToken, Grant, User)
            .join(Grant, Grant.id == RefreshToken.grant_id)
            .join(User, User.id == Grant.user_id)
            .where(RefreshToken.token_hash == secrets.digest(token))
        ).first()
        return (row[0], row[1], row[2]) if row else None

    @staticmethod
    def is_grant_live(grant: Grant) -> bool:
        return grant.revoked_at is None and clock.utcnow() < aware(grant.expires_at)

    def rotate_refresh_token(self, session: Session, token_hash: str, grant_id: str) -> str | None:
        """Mark the token used and issue its successor, atomically.

        Returns ``None`` when the token had already been used: a replay, after
        which the whole grant is revoked.
        """
        result = session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
            .values(used_at=clock.utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            self.revoke_grant(session, grant_id)
            return None
        successor = secrets.new_secret()
        session.add(RefreshToken(token_hash=secrets.digest(successor), grant_id=grant_id))
        session.commit()
        return successor

    def rotate_in_one_statement(
        self, dbapi_connection: Any, token: str, client_id: str
    ) -> tuple[str, Any] | None:
        """The whole happy path of a refresh in one atomic statement prepared
        by psycopg (PostgreSQL): spend the token if it is unused and its grant
        is live, of ``client_id`` and of an active user; add its successor;
        return the successor and the grant's columns with the user's
        ``subject``.

        ``None`` when any condition fails; nothing was changed then, and the
        full refresh path (which also handles replays) can take the request.
        """
        successor = secrets.new_secret()
        row = _prepared_row(
            dbapi_connection,
            ROTATION_SQL,
            {
                "old": secrets.digest(token),
                "new": secrets.digest(successor),
                "client_id": client_id,
                "now": clock.utcnow(),
            },
        )
        return (successor, row) if row is not None else None

    def revoke_grant(self, session: Session, grant_id: str) -> None:
        """End a grant: its refresh tokens stop working and its live access
        tokens are deny-listed until the longest of them expires."""
        session.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
            .values(revoked_at=clock.utcnow())
        )
        session.commit()
        self.store.redis.set(
            self.store.key("deny", "grant", grant_id), 1, ex=self.access_token_seconds
        )

    def deny_sessions(self, session_ids: Iterable[str]) -> None:
        """Deny-list the access tokens of ended SSO sessions (by their ``sid``)
        until the longest of them expires: the grant rows they were issued for
        need not be found (one made in a database's last moment before a crash
        may be gone, see :func:`idp.db.init_app`)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.set(self._ended_session_key(session_id), 1, ex=self._login_ending_seconds)
        pipe.execute()

    def revoke_session_grants(self, session: Session, session_id: str) -> int:
        """Revoke the live grants made in one SSO session (indexed by session)."""
        grant_ids = list(
            session.scalars(
                select(Grant.id).where(Grant.session_id == session_id, Grant.revoked_at.is_(None))
            )
        )
        for grant_id in grant_ids:
            self.revoke_grant(session, grant_id)
        return len(grant_ids)

    def revoke_user_grants(self, session: Session, user_id: int) -> int:
        """Revoke every live grant of one user (indexed by user) in one
        statement, and deny-list their access tokens (in one pipeline) and,
        first, every other token of the user issued before this second;
        returns how many grants."""
        subject = session.scalar(select(User.subject).where(User.id == user_id))
        if subject is not None:
            # Every token of the user issued before this second, whatever
            # grant or session it came from (a grant lost in a crash, a
            # session that had already left the user's index); set before the
            # grants are revoked, so that a grant committed meanwhile meets it
            # (create_grant, claim_code).
            self.store.call(
                "SET", self._user_cutoff_key(subject), clock.now(), "EX", self._login_ending_seconds
            )
        grant_ids = list(
            session.scalars(
                update(Grant)
                .where(Grant.user_id == user_id, Grant.revoked_at.is_(None))
                .values(revoked_at=clock.utcnow())
                .returning(Grant.id)
                .execution_options(synchronize_session=False)
            )
        )
        session.commit()
        pipe = self.store.redis.pipeline(transaction=False)
        for grant_id in grant_ids:
            pipe.set(self.store.key("deny", "grant", grant_id), 1, ex=self.access_token_seconds)
        pipe.execute()
        return len(grant_ids)

    def userinfo_subject(self, connection: Session | Connection, token: AccessToken) -> Row | None:
        """The active user behind a live (unrevoked, unexpired) grant of a user's access token, in one
        query: the user's columns (what :func:`~idp.services.claims.user_claims`
        reads), without the ORM's work of building an object."""
        if not token.grant_id:
            return None
        return connection.execute(
            USERINFO_QUERY, {"grant_id": token.grant_id, "now": clock.utcnow()}
        ).first()

    @staticmethod
    def userinfo_subject_on_postgresql(dbapi_connection: Any, token: AccessToken) -> Any:
        """:meth:`userinfo_subject` run by psycopg itself as a prepared
        statement, its row read by column name: the same answer without
        SQLAlchemy's execution layer, a third of UserInfo's time (measured)."""
        if not token.grant_id:
            return None
        return _prepared_row(
            dbapi_connection, USERINFO_SQL, {"grant_id": token.grant_id, "now": clock.utcnow()}
        )


def _prepared_row(dbapi_connection: Any, sql: str, values: dict[str, Any]) -> Any:
    """The first row of ``sql`` run by psycopg as a prepared statement (on a
    connection in autocommit), read by column name; ``None`` without one."""
    with dbapi_connection.cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(sql, values, prepare=True)
        return cursor.fetchone()


def _refresh_token_insert(token_hash: Any, grant_id: Any, now: Any) -> Any:
    """Insert a refresh token (its hash) of a grant selected by a CTE, returning the grant."""
    tokens = RefreshToken.__table__
    return (
        insert(tokens)
        .from_select(["token_hash", "grant_id", "created_at"], select(token_hash, grant_id, now))
        .returning(tokens.c.grant_id)
    )


def _rotation_statement() -> Any:
    tokens, grants, users = RefreshToken.__table__, Grant.__table__, User.__table__
    now = bindparam("now")
    live_grants = (
        select(grants.c.id)
        .join(users, users.c.id == grants.c.user_id)
        .where(
            grants.c.client_id == bindparam("client_id"),
            grants.c.revoked_at.is_(None),
            grants.c.expires_at > now,
            users.c.is_active.is_(True),
        )
    )
    spent = (
        update(tokens)
        .where(
            tokens.c.token_hash == bindparam("old"),
            tokens.c.used_at.is_(None),
            tokens.c.grant_id.in_(live_grants),
        )
        .values(used_at=now)
        .returning(tokens.c.grant_id)
        .cte("spent")
    )
    added = _refresh_token_insert(bindparam("new"), spent.c.grant_id, now).cte("added")
    return (
        select(grants, users.c.subject)
        .join(users, users.c.id == grants.c.user_id)
        .where(grants.c.id.in_(select(added.c.grant_id)))
    )


def _new_grant_statement(with_refresh_token: bool) -> Any:
    grants, users = Grant.__table__, User.__table__
    now = bindparam("now")
    added = (
        insert(grants)
        .from_select(
            [
                "id",
                "user_id",
                "client_id",
                "scope",
                "session_id",
                "auth_time",
                "acr",
                "amr",
                "created_at",
                "expires_at",
            ],
            select(
                bindparam("grant_id"),
                users.c.id,
                bindparam("client_id"),
                bindparam("scope"),
                bindparam("session_id"),
                bindparam("auth_time"),
                bindparam("acr"),
                bindparam("amr", type_=grants.c.amr.type),
                now,
                bindparam("expires_at"),
            ).where(users.c.id == bindparam("user_id"), users.c.is_active.is_(True)),
        )
        .returning(grants.c.id, grants.c.user_id)
        .cte("added")
    )
    statement = select(*(users.c[name] for name in ("subject", *CLAIMS_BY_SCOPE_COLUMNS))).join(
        added, added.c.user_id == users.c.id
    )
    if not with_refresh_token:
        return statement
    first = _refresh_token_insert(bindparam("refresh_hash"), added.c.id, now).cte(
        "first_refresh_token"
    )
    return statement.where(select(first.c.grant_id).exists())


#: The user's columns UserInfo reads: the subject and every claim's column.
CLAIMS_BY_SCOPE_COLUMNS = tuple(
    dict.fromkeys(name for names in CLAIMS_BY_SCOPE.values() for name in names)
)
#: Built once: composing a statement can cost more than running it (measured).
ROTATION_SQL = str(_rotation_statement().compile(dialect=postgresql.dialect()))
USERINFO_QUERY = (
    select(*(User.__table__.c[name] for name in ("subject", *CLAIMS_BY_SCOPE_COLUMNS)))
    .join(Grant, Grant.user_id == User.id)
    .where(
        Grant.id == bindparam("grant_id"),
        Grant.revoked_at.is_(None),
        Grant.expires_at > bindparam("now"),
        User.is_active.is_(True),
    )
)
NEW_GRANT_SQL = str(
    _new_grant_statement(with_refresh_token=False).compile(dialect=postgresql.dialect())
)
NEW_GRANT_WITH_REFRESH_TOKEN_SQL = str(
    _new_grant_statement(with_refresh_token=True).compile(dialect=postgresql.dialect())
)
USERINFO_SQL = str(USERINFO_QUERY.compile(dialect=postgresql.dialect()))


def new_grant_id() -> str:
    return std_secrets.token_hex(16)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
