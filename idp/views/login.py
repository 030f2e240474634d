"""The login step of a flow: e-mail and password."""

from __future__ import annotations

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
from idp.services.flows import FlowError
from idp.services.flows import Step
from idp.web import browser_id
from idp.web import current_sso
from idp.web import set_sso_cookie

__all__ = ["bp"]

bp = Blueprint("login", __name__)

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

    user = services().accounts.authenticate(get_session(), email, request.form.get("password", ""))
    if user is None:
        error = _("The e-mail address or the password is wrong.")
        page = render_template(
            "login/password.html", client=client, email=email, flow=flow, error=error
        )
        return page, 400

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
