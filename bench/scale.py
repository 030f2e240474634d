"""The scale runs of ``make bench``: many users in PostgreSQL (COPY) and many
live sessions in Redis (pipelined writes, in the session store's own format),
then the same hot endpoints again, and the revocation of one user's 1,000
sessions, timed, with everyone else's sessions counted before and after."""

from __future__ import annotations

import secrets
import time

import psycopg

from idp import clock
from idp.services import secrets as idp_secrets
from idp.services.sessions import SsoSession

BATCH = 10_000


def add_users(database: str, count: int) -> float:
    """Add ``count`` accounts with COPY; returns the seconds it took."""
    started = time.monotonic()
    now = clock.utcnow()
    with psycopg.connect(database) as conn, conn.cursor() as cur:
        columns = (
            "subject, email, email_verified, name, given_name, family_name, job_title,"
            " organization, phone_number_verified, is_active, is_admin, mfa_required,"
            " created_at, updated_at"
        )
        with cur.copy(f"COPY users ({columns}) FROM STDIN") as copy:
            for n in range(count):
                copy.write_row(
                    (secrets.token_hex(12), f"scale{n}@example.com", True, "Scale User",
                     "Scale", "User", "", "Scale A/S", False, True, False, True, now, now)
                )  # fmt: skip
        cur.execute("ANALYZE users")
    return time.monotonic() - started


def add_sessions(app, user_ids: list[int], per_user: int = 1) -> float:  # type: ignore[no-untyped-def]
    """Write ``per_user`` live SSO sessions for each user id; returns seconds."""
    svc = app.extensions["idp"]
    store, sessions = svc.store, svc.sessions
    now = clock.now()
    ttl = sessions.idle_seconds
    started = time.monotonic()
    pipe = store.redis.pipeline(transaction=False)
    pending = 0
    for user_id in user_ids:
        for _ in range(per_user):
            session = SsoSession(
                id=idp_secrets.new_secret(),
                user_id=user_id,
                auth_time=now,
                amr=["pwd", "otp", "mfa"],
                acr="2fa",
                created_at=now,
                last_seen=now,
                key=idp_secrets.digest(idp_secrets.new_secret()),
                clients=["bench-rs"],
                reached={"bench-rs": now},
            )
            pipe.set(store.key("sess", session.key), session.to_json(), ex=ttl)
            pipe.set(store.key("sid", session.id), session.key, ex=ttl)
            pipe.sadd(store.key("usess", str(user_id)), session.key)
            pending += 1
            if pending >= BATCH:
                pipe.execute()
                pending = 0
    pipe.execute()
    return time.monotonic() - started


def count_sessions(app) -> int:  # type: ignore[no-untyped-def]
    store = app.extensions["idp"].store
    return sum(1 for _ in store.redis.scan_iter(match=store.key("sess", "*"), count=10_000))


def revoke_timed(app, user_id: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """End every session of one user as an admin would; seconds and sessions ended."""
    from idp.db import get_session
    from idp.services.audit import Origin

    with app.app_context():
        started = time.monotonic()
        ended = app.extensions["idp"].logout.end_user(get_session(), user_id, Origin())
        return time.monotonic() - started, ended.sessions
