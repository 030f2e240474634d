"""Logging out: OpenID Connect RP-Initiated Logout 1.0 at ``/logout``, with
Back-Channel and Front-Channel Logout 1.0 to every product the session reached.

A request with a valid ``id_token_hint`` for the current session (or when no
session is left) logs out at once; otherwise the user confirms on a screen
(POST with a CSRF token), so a link alone cannot log anyone out. A
``post_logout_redirect_uri`` must be registered, exactly, for the client the
hint names (or ``client_id``); otherwise no redirect happens.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

from flask import Blueprint
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from idp.context import services
from idp.db import get_session
from idp.services.clients import RegisteredClient
from idp.services.logout import Ended
from idp.views.login import origin
from idp.web import csrf
from idp.web import current_sso
from idp.web import error_page
from idp.web import set_sso_cookie

__all__ = ["bp"]

bp = Blueprint("logout", __name__)

PARAMETERS = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales")


@bp.route("/logout", methods=["GET", "POST"])
@csrf.exempt  # relying parties may POST the request; the confirmation checks its own token
def end_session() -> Any:
    params = {name: request.values.get(name, "")[:4096] for name in PARAMETERS}
    g.ui_locales = params["ui_locales"] or None
    hint = (
        services().tokens.peek_id_token(params["id_token_hint"])
        if params["id_token_hint"]
        else None
    )
    if params["id_token_hint"] and hint is None:
        return _invalid(_("The logout request names a session that is not ours."))
    client = _client(params, hint)
    if client is False:
        return _invalid(_("The logout request names an unknown application."))
    target = params["post_logout_redirect_uri"]
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return _invalid(_("The address to return to after logout is not registered."))

    sso = current_sso()
    confirmed = request.method == "POST" and request.form.get("confirm") == "yes"
    if confirmed:
        try:
            validate_csrf(request.form.get("csrf_token"))
        except (ValidationError, CSRFError):
            return _invalid(_("The logout form has expired. Try again."))
    # A hint for this very session (or no session left to end) needs no confirmation.
    hinted = hint is not None and (sso is None or hint.get("sid") == sso.id)
    if sso is not None and not (hinted or confirmed):
        return render_template(
            "logout/confirm.html",
            params=params,
            client_name=client.display_name if client else None,
        )

    ended = Ended()
    if sso is not None:
        ended = services().logout.end_session(get_session(), sso, origin(), actor_id=sso.user_id)
    if target:
        separator = "&" if urlsplit(target).query else "?"
        location = target + (
            separator + "state=" + quote(params["state"], safe="") if params["state"] else ""
        )
        if ended.frontchannel:
            page = render_template("logout/done.html", frames=ended.frontchannel, next_url=location)
            response = make_response(page)
            _allow_frames(response, ended.frontchannel)
        else:
            response = make_response(redirect(location))
    else:
        response = make_response(render_template("logout/done.html", frames=ended.frontchannel))
        _allow_frames(response, ended.frontchannel)
    return set_sso_cookie(response, None)


def _client(params: dict[str, str], hint: dict[str, Any] | None) -> RegisteredClient | bool | None:
    """The client the request is about: the hint's audience, or ``client_id``
    (which must agree with the hint). False when it is unknown or disagrees."""
    audience = hint.get("aud") if hint else None
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else None
    client_id = params["client_id"] or audience
    if params["client_id"] and audience and params["client_id"] != audience:
        return False
    if not client_id:
        return None
    return services().clients.get(str(client_id)) or False


def _allow_frames(response: Any, frames: list[str]) -> None:
    """The logged-out page loads each product's front-channel logout URL in a frame."""
    if not frames:
        return
    origins = sorted({"{0.scheme}://{0.netloc}".format(urlsplit(url)) for url in frames})
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; frame-ancestors 'none'; "
        "form-action 'self' http: https:; frame-src " + " ".join(origins)
    )


def _invalid(message: str) -> Any:
    return error_page(_("The logout request is not valid"), message, status=400)
