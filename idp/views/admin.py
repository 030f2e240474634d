"""The admin pages (journey J5): users, their sessions and the products each
reached, revocation, and the audit log.

Only administrators who logged in with two factors get in; everyone else gets
403 (or, without a session, the login). Every action is a POST with a CSRF
token and a ticked confirmation box, and is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint
from flask import abort
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import or_
from sqlalchemy import select

from idp import admin
from idp.context import services
from idp.db import get_session
from idp.invitations import invite
from idp.models import AuditEvent
from idp.models import User
from idp.oidc.views import FLOW_WINDOW_SECONDS
from idp.oidc.views import start_flow
from idp.services.accounts import AccountError
from idp.services.accounts import UserProfile
from idp.services.flows import Step
from idp.views.login import origin
from idp.web import current_sso
from idp.web import error_page
from idp.web import too_many_attempts_page

__all__ = ["bp"]

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view runs for an active admin whose session rests on two factors;
    the admin is passed as the first argument."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        sso = current_sso()
        if sso is None:
            flow = start_flow({}, Step.IDENTIFY, return_to=request.path)
            if flow is None:
                return too_many_attempts_page(FLOW_WINDOW_SECONDS)
            return redirect(url_for("login.identify", flow=flow.id))
        user = get_session().get(User, sso.user_id)
        if user is None or not user.is_active or not user.is_admin or "mfa" not in sso.amr:
            return error_page(
                _("No access"),
                _("These pages are for administrators who logged in with two-step verification."),
                status=403,
            )
        return view(user, *args, **kwargs)

    return wrapped


def _confirmed() -> bool:
    return request.form.get("confirm") == "yes"


def _target(user_id: int) -> User:
    user = get_session().get(User, user_id)
    if user is None:
        abort(404)
    return user


def _done(user: User, message: str) -> Any:
    return redirect(url_for("admin.user", user_id=user.id, done=message))


# -- users -----------------------------------------------------------------------------------
@bp.get("/")
@admin_required
def users(me: User) -> Any:
    query = request.args.get("q", "").strip()[:200]
    statement = select(User).order_by(User.email).limit(PAGE_SIZE)
    if query:
        like = f"%{query.lower()}%"
        statement = statement.where(
            or_(User.email.like(like), User.name.ilike(like), User.organization.ilike(like))
        )
    found = list(get_session().scalars(statement))
    return render_template("admin/users.html", me=me, users=found, q=query)


@bp.post("/invite")
@admin_required
def invite_user(me: User) -> Any:
    email = request.form.get("email", "")
    name = request.form.get("name", "").strip()
    profile = UserProfile(
        name=name or None,
        given_name=name.partition(" ")[0] or None,
        family_name=name.partition(" ")[2] or None,
        organization=request.form.get("organization", "").strip() or None,
        job_title=request.form.get("job_title", "").strip() or None,
    )
    session = get_session()
    try:
        user = invite(session, email, profile, services().settings.default_client_id)
    except AccountError:
        found = list(session.scalars(select(User).order_by(User.email).limit(PAGE_SIZE)))
        page = render_template(
            "admin/users.html",
            me=me,
            users=found,
            q="",
            error=_("Enter a valid e-mail address."),
        )
        return page, 400
    services().audit.record(
        session, "admin.user_invited", origin(), subject_id=user.id, actor_id=me.id
    )
    return _done(user, "invited")


@bp.get("/users/<int:user_id>")
@admin_required
def user(me: User, user_id: int) -> Any:
    target = _target(user_id)
    svc = services()
    session = get_session()
    sessions = sorted(svc.sessions.for_user(target.id), key=lambda s: -s.created_at)
    names = {
        c: (svc.clients.get(c).display_name if svc.clients.get(c) else c)
        for s in sessions
        for c in s.clients
    }
    return render_template(
        "admin/user.html",
        me=me,
        user=target,
        methods=svc.factors.methods(session, target),
        sessions=sessions,
        client_names=names,
        events=svc.audit.recent(session, subject_id=target.id, limit=30),
        done=request.args.get("done"),
        when=_when,
    )


def _when(seconds: int | None) -> str:
    if not seconds:
        return "–"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


#: Actions that could lock an administrator out.
LOCKING_ACTIONS = ("disable", "reset-factors", "force-password-reset")
ACTIONS = {
    "disable": admin.disable,
    "enable": admin.enable,
    "reset-factors": admin.reset_factors,
    "force-password-reset": admin.force_password_reset,
    "resend-invitation": admin.resend_invitation,
    "revoke-all": admin.revoke_all,
}


@bp.post("/users/<int:user_id>/<action>")
@admin_required
def act(me: User, user_id: int, action: str) -> Any:
    target = _target(user_id)
    run = ACTIONS.get(action)
    if run is None:
        abort(404)
    if not _confirmed():
        return _refused(target)
    if target.is_admin and action in LOCKING_ACTIONS:
        # Nobody locks an administrator (or themselves) out from here; the
        # command line, on the server, can.
        return error_page(
            _("Not allowed"),
            _("Administrators are disabled or reset on the command line, not here."),
            status=403,
        )
    run(get_session(), target, origin(), me.id)
    return _done(target, action)


@bp.post("/users/<int:user_id>/sessions/<session_id>/revoke")
@admin_required
def revoke_session(me: User, user_id: int, session_id: str) -> Any:
    target = _target(user_id)
    if not _confirmed():
        return _refused(target)
    sso = services().sessions.by_id(session_id)
    if sso is None or sso.user_id != target.id:
        return _done(target, "gone")
    admin.revoke_session(get_session(), target, sso, origin(), me.id)
    return _done(target, "revoked")


def _refused(target: User) -> Any:
    return error_page(
        _("Please confirm"),
        _("Tick the box to confirm the action, then try again."),
        status=400,
        back=url_for("admin.user", user_id=target.id),
    )


# -- audit log -------------------------------------------------------------------------------
@bp.get("/audit")
@admin_required
def audit(me: User) -> Any:
    session = get_session()
    event = request.args.get("event", "").strip()[:64]
    email = request.args.get("user", "").strip().lower()[:320]
    client_id = request.args.get("client", "").strip()[:100]
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(200)
    if event:
        statement = statement.where(AuditEvent.event.like(event.replace("*", "%")))
    if client_id:
        statement = statement.where(AuditEvent.client_id == client_id)
    if email:
        subject = session.scalar(select(User.id).where(User.email == email))
        statement = statement.where(AuditEvent.subject_id == (subject or -1))
    events = list(session.scalars(statement))
    ids = {e.subject_id for e in events} | {e.actor_id for e in events}
    ids.discard(None)
    emails = (
        dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())
        if ids
        else {}
    )
    return render_template(
        "admin/audit.html",
        me=me,
        events=events,
        emails=emails,
        filters={"event": event, "user": email, "client": client_id},
    )
