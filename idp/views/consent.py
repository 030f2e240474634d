"""The consent step: a user approves what a third-party client asks for."""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import scope_to_list
from flask import Blueprint
from flask import g
from flask import render_template
from flask import request
from flask_babel import gettext as _

from idp.context import services
from idp.db import get_session
from idp.oidc.views import continue_flow
from idp.oidc.views import deny_flow
from idp.oidc.views import restart_page
from idp.oidc.views import validate_authorization
from idp.services.flows import FlowError
from idp.services.flows import Step
from idp.views.login import current_screen
from idp.web import browser_id
from idp.web import current_sso

__all__ = ["bp"]

bp = Blueprint("consent", __name__)


def _scope_descriptions() -> dict[str, str]:
    return {
        "openid": _("Know who you are"),
        "profile": _("Your name and language"),
        "email": _("Your e-mail address"),
        "phone": _("Your phone number"),
        "address": _("Your address"),
        "organization": _("Your organisation and job title"),
        "offline_access": _("Stay connected when you are not using it"),
    }


@bp.route("/consent", methods=["GET", "POST"])
def show() -> Any:
    try:
        flow = services().flows.require(request.args.get("flow"), browser_id(), Step.CONSENT)
    except FlowError as error:
        return current_screen(error)
    g.ui_locales = flow.params.get("ui_locales")
    sso = current_sso()
    if sso is None or sso.user_id != flow.user_id:
        return restart_page()
    try:
        grant, _redirect_uri = validate_authorization(flow.params)
    except OAuth2Error:
        return deny_flow(flow)
    client = grant.request.client
    # The validated scope: what the client may have, widened by requested claims.
    scopes = scope_to_list(grant.request.scope) or []
    if request.method == "GET":
        return render_template(
            "consent/consent.html",
            client=client,
            scopes=scopes,
            flow=flow,
            scope_descriptions=_scope_descriptions(),
        )

    if request.form.get("decision") != "allow":
        return deny_flow(flow)
    services().consents.grant(get_session(), flow.user_id, client.client_id, scopes)
    flow.consented = True
    return continue_flow(flow)
