"""The login step of a flow: e-mail and password."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Blueprint
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask_babel import gettext as _

from idp import clock
from idp.context import services
from idp.db import get_session
from idp.oidc.views import continue_flow
from idp.oidc.views import restart_page
from idp.services.accounts import normalize_email
from idp.services.flows import FlowError
from idp.services.flows import Step
from idp.services.ratelimit import TooManyAttemptsError
from idp.web import browser_id
from idp.web import current_sso
from idp.web import set_sso_cookie

__all__ = ["bp"]

bp = Blueprint("login", __name__)

#: Failed password attempts allowed per window before logins are refused.
FAILURES_PER_ACCOUNT = 10
FAILURES_PER_IP = 100
FAILURE_WINDOW_SECONDS = 15 * 60

#: acr values: what kind of authentication the session rests on.
ACR_ONE_FACTOR = "1fa"


@bp.route("/login", methods=["GET", "POST"])
def password() -> Any:
    try:
        flow = services().flows.require(request.args.get("flow"), browser_id(), Step.LOGIN)
    except FlowError:
        return restart_page()
    g.ui_locales = flow.params.get("ui_locales")
    client = services().clients.get(flow.client_id)
    if client is None:
        return restart_page()
    email = request.form.get("email", flow.params.get("login_hint", "")).strip()
    if request.method == "GET":
        return render_template("login/password.html", client=client, email=email, flow=flow)

    account = normalize_email(email)
    ip = request.remote_addr or "-"
    limiter = services().limiter

    def page(error: str, status: int) -> Any:
        html = render_template(
            "login/password.html", client=client, email=email, flow=flow, error=error
        )
        return html, status

    try:
        # Checked before the password, per account and per IP (RFC 6749 §10.10);
        # an unknown address is counted like a known one, so locks reveal nothing.
        limiter.check("login-account", account, FAILURES_PER_ACCOUNT)
        limiter.check("login-ip", ip, FAILURES_PER_IP)
    except TooManyAttemptsError as error:
        minutes = max(1, (error.resets_in + 59) // 60)
        message = _("Too many attempts. Try again in %(minutes)d minutes.", minutes=minutes)
        return page(message, 429)
    user = services().accounts.authenticate(get_session(), email, request.form.get("password", ""))
    if user is None:
        for bucket, key, limit in (
            ("login-account", account, FAILURES_PER_ACCOUNT),
            ("login-ip", ip, FAILURES_PER_IP),
        ):
            # A failure that uses up the allowance still gets the usual answer;
            # the next attempt is refused by the check above.
            with contextlib.suppress(TooManyAttemptsError):
                limiter.hit(bucket, key, limit, FAILURE_WINDOW_SECONDS)
        return page(_("The e-mail address or the password is wrong."), 400)
    limiter.reset("login-account", account)

    previous = current_sso()
    if previous is not None:
        services().sessions.revoke(previous)
    cookie, sso = services().sessions.create(
        user.id, amr=["pwd"], acr=ACR_ONE_FACTOR, auth_time=clock.now()
    )
    g.sso = sso
    flow.user_id = user.id
    flow.amr = ["pwd"]
    flow.auth_time = sso.auth_time
    response = make_response(continue_flow(flow))
    return set_sso_cookie(response, cookie)


@bp.post("/logout")
def logout() -> Any:
    """End this browser's IdP session (a POST with a CSRF token)."""
    sso = current_sso()
    if sso is not None:
        services().sessions.revoke(sso)
    response = make_response(redirect("/"))
    return set_sso_cookie(response, None)
