"""The consent step: a user approves what a third-party client asks for."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from flask import Blueprint
from flask import g
from flask import render_template
from flask import request

from idp.context import services
from idp.db import get_session
from idp.oidc.views import continue_flow
from idp.oidc.views import deny_flow
from idp.oidc.views import restart_page
from idp.services.flows import FlowError
from idp.services.flows import Step
from idp.web import browser_id

__all__ = ["bp"]

bp = Blueprint("consent", __name__)


@bp.route("/consent", methods=["GET", "POST"])
def show() -> Any:
    try:
        flow = services().flows.require(request.args.get("flow"), browser_id(), Step.CONSENT)
    except FlowError:
        return restart_page()
    g.ui_locales = flow.params.get("ui_locales")
    client = services().clients.get(flow.client_id)
    if client is None or flow.user_id is None:
        return restart_page()
    scopes = scope_to_list(client.get_allowed_scope(flow.params.get("scope"))) or []
    if request.method == "GET":
        return render_template("consent/consent.html", client=client, scopes=scopes, flow=flow)

    if request.form.get("decision") != "allow":
        return deny_flow(flow)
    services().consents.grant(get_session(), flow.user_id, client.client_id, scopes)
    flow.consented = True
    return continue_flow(flow)
