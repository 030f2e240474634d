"""Protocol endpoints: discovery, JWKS, authorization, token, UserInfo,
revocation and introspection.

The authorization endpoint validates the request with Authlib, then decides
with the SSO session whether the user must log in or consent (OIDC Core
§3.1.2.1 ``prompt``, ``max_age``, ``id_token_hint``). When they must, the
request is parked in a login :class:`~idp.services.flows.Flow`, and
:func:`continue_flow` finishes it after the last step.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError
from authlib.oauth2.rfc6749 import InsecureTransportError
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.errors import ConsentRequiredError
from authlib.oidc.core.errors import LoginRequiredError
from authlib.oidc.core.errors import RequestNotSupportedError
from authlib.oidc.core.errors import RequestURINotSupportedError
from flask import Blueprint
from flask import Response
from flask import redirect
from flask import request
from flask import url_for
from flask_babel import gettext as _

from idp import clock
from idp.context import services
from idp.db import get_session
from idp.oidc.server import ParamsRequest
from idp.services.claims import SUPPORTED_CLAIMS
from idp.services.claims import user_claims
from idp.services.clients import GRANT_TYPES
from idp.services.clients import SCOPES
from idp.services.clients import RegisteredClient
from idp.services.flows import Flow
from idp.services.flows import Step
from idp.services.keys import ALGORITHMS
from idp.services.ratelimit import TooManyAttemptsError
from idp.services.sessions import SsoSession
from idp.services.tokens import InvalidTokenError
from idp.web import browser_id
from idp.web import csrf
from idp.web import current_sso
from idp.web import error_page
from idp.web import too_many_attempts_page

__all__ = ["bp"]

bp = Blueprint("oidc", __name__)


class _Issuer(IssuerParameter):  # type: ignore[misc]
    """RFC 9207: every authorization response names its issuer."""

    def get_issuer(self) -> str:
        return services().settings.issuer


_issuer = _Issuer()


# -- metadata -------------------------------------------------------------------
def discovery_document() -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3: only what actually works is advertised."""
    issuer = services().settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "end_session_endpoint": issuer + "/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "azp",
            "sid",
            *SUPPORTED_CLAIMS,
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["da", "en"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
    }


def _cached_json(body: bytes, max_age: int) -> Response:
    etag = hashlib.sha256(body).hexdigest()[:32]
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)


_discovery_cache: dict[str, bytes] = {}


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    issuer = services().settings.issuer
    body = _discovery_cache.get(issuer)
    if body is None:
        body = json.dumps(discovery_document(), separators=(",", ":")).encode()
        _discovery_cache[issuer] = body
    return _cached_json(body, services().settings.metadata_cache_seconds)


@bp.get("/jwks.json")
def jwks() -> Response:
    return _cached_json(services().keyring.jwks_json, services().settings.metadata_cache_seconds)


# -- authorization endpoint -------------------------------------------------------
#: The parameters of the request itself (what is asked, by whom, where to answer).
PLAIN_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)
#: The authorization request parameters we act on: the plain ones and those that
#: change how it is answered; others are ignored (OIDC Core §3.1.2.1) and not
#: stored with the flow.
KNOWN_PARAMETERS = (
    *PLAIN_PARAMETERS,
    "prompt",
    "max_age",
    "login_hint",
    "ui_locales",
    "id_token_hint",
    "claims",
    "response_mode",
    "display",
    "acr_values",
    "request",
    "request_uri",
)
#: Longest accepted value of one parameter: bounds what a flow keeps in Redis.
MAX_PARAMETER_LENGTH = 4096
MAX_AGE_PATTERN = re.compile(r"[0-9]{1,9}")


class ParameterTooLongError(ValueError):
    pass


def _request_params() -> tuple[dict[str, str], dict[str, list[str]]]:
    values = request.args if request.method == "GET" else request.form
    params: dict[str, str] = {}
    datalist: dict[str, list[str]] = {}
    for name in KNOWN_PARAMETERS:
        found = values.getlist(name)
        if not found:
            continue
        if any(len(v) > MAX_PARAMETER_LENGTH for v in found):
            raise ParameterTooLongError(name)
        params[name] = found[0]
        datalist[name] = found
    return params, datalist


def _authorization_request(
    params: dict[str, str], datalist: dict[str, list[str]] | None = None
) -> ParamsRequest:
    return ParamsRequest(services().settings.issuer + "/authorize", params, datalist)


def _error_response(error: OAuth2Error, state: str | None) -> Any:
    """Redirect the error to the client when its redirect URI was validated
    (RFC 6749 §4.1.2.1); otherwise show it, never redirecting to an unchecked URI."""
    error.state = state
    if error.redirect_uri:
        status, body, headers = error()
        response = Response(body, status=status, headers=headers)
        _issuer.add_issuer_parameter(services().server, response)
        return response
    return error_page(
        _("The login request is not valid"),
        _("The application that sent you here made an invalid request."),
        error=error.error,
        description=error.description,
    )


def _validate(req: ParamsRequest) -> tuple[Any, str]:
    """Authlib's validation: client, redirect URI, response type, scope, PKCE, nonce."""
    server = services().server
    grant = server.get_authorization_grant(req)
    grant.validate_no_multiple_request_parameter(req)
    redirect_uri = grant.validate_authorization_request()
    return grant, redirect_uri


def issue_code(grant: Any, redirect_uri: str, sso: SsoSession) -> Response:
    # Noted in the session first; a session revoked meanwhile gets no code.
    if not services().sessions.add_client(sso, grant.request.client.client_id):
        raise LoginRequiredError(redirect_uri=redirect_uri)
    status, body, headers = grant.create_authorization_response(redirect_uri, sso)
    response = Response(body, status=status, headers=headers)
    _issuer.add_issuer_parameter(services().server, response)
    return response


def validate_authorization(params: dict[str, str]) -> tuple[Any, str]:
    """Validate parked authorization parameters again (the client may have
    changed since); returns the grant and the redirect URI."""
    return _validate(_authorization_request(params))


def _needs_consent(
    sso: SsoSession, client: RegisteredClient, scope: str, prompts: set[str]
) -> bool:
    if "consent" in prompts:
        return True  # OIDC Core §3.1.2.1, even for a first-party client
    if client.is_first_party:
        return False
    return not services().consents.covers(
        get_session(), sso.user_id, client.client_id, scope_to_list(scope) or []
    )


def _hint_subject(params: dict[str, str], redirect_uri: str) -> str | None:
    """The ``sub`` of a valid ``id_token_hint`` (expired hints are accepted,
    OIDC Core §3.1.2.1); an ID token that is not ours is an invalid request."""
    hint = params.get("id_token_hint")
    if not hint:
        return None
    claims = services().tokens.peek_id_token(hint)
    if claims is None:
        raise InvalidRequestError("Invalid 'id_token_hint'.", redirect_uri=redirect_uri)
    return str(claims.get("sub"))


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorize() -> Any:
    try:
        params, datalist = _request_params()
    except ParameterTooLongError as error:
        return _invalid_request_page(f"The '{error}' parameter is too long.")
    state = params.get("state")
    req = _authorization_request(params, datalist)
    try:
        try:
            grant, redirect_uri = _validate(req)
        except ValueError:
            # Authlib refuses to echo characters that are not allowed in an error
            # description (a quote in a redirect URI, say): answer with a page.
            return _invalid_request_page("The request contains invalid characters.")
        if "request" in params:
            raise RequestNotSupportedError(redirect_uri=redirect_uri)
        if "request_uri" in params:
            raise RequestURINotSupportedError(redirect_uri=redirect_uri)
        prompts = set(params.get("prompt", "").split())
        if "none" in prompts and len(prompts) > 1:
            raise InvalidRequestError(
                "'prompt=none' cannot be combined.", redirect_uri=redirect_uri
            )
        max_age = params.get("max_age")
        if max_age is not None and not MAX_AGE_PATTERN.fullmatch(max_age):
            raise InvalidRequestError("Invalid 'max_age'.", redirect_uri=redirect_uri)
        hinted_subject = _hint_subject(params, redirect_uri)

        sso = current_sso()
        must_login = sso is None or "login" in prompts
        if sso is not None and max_age is not None:
            must_login = must_login or clock.now() - sso.auth_time > int(max_age)
        if sso is not None and hinted_subject is not None and not must_login:
            user = services().accounts.find_by_id(get_session(), sso.user_id)
            must_login = user is None or user.subject != hinted_subject
        if sso is None or must_login:
            if "none" in prompts:
                raise LoginRequiredError(redirect_uri=redirect_uri)
            flow = start_flow(params, Step.IDENTIFY)
            if flow is None:
                return too_many_attempts_page(FLOW_WINDOW_SECONDS)
            if request.method == "POST":
                # A form posted from another site carries no SameSite=Lax
                # cookie (the remembered address, the language): the screen
                # comes from a GET of its own, which does.
                return redirect(url_for("login.identify", flow=flow.id))
            # The e-mail screen itself, not a redirect to it (one request
            # fewer per login); its form posts to the flow's own URL.
            from idp.views.login import identify_page

            return identify_page(flow)

        if _needs_consent(sso, grant.request.client, grant.request.scope, prompts):
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=redirect_uri)
            flow = start_flow(params, Step.CONSENT)
            if flow is None:
                return too_many_attempts_page(FLOW_WINDOW_SECONDS)
            flow.user_id = sso.user_id
            services().flows.save(flow)
            return redirect(url_for("consent.show", flow=flow.id))
        return issue_code(grant, redirect_uri, sso)
    except OAuth2Error as error:
        return _error_response(error, state)


#: Login flows one IP address may start per window: bounds what one source can
#: park in Redis.
FLOWS_PER_IP = 300
FLOW_WINDOW_SECONDS = 600


def start_flow(params: dict[str, str], step: str, **fields: object) -> Flow | None:
    """A new flow for this browser, or None when this IP address has started
    too many lately."""
    try:
        services().limiter.hit(
            "flow-ip", request.remote_addr or "-", FLOWS_PER_IP, FLOW_WINDOW_SECONDS
        )
    except TooManyAttemptsError:
        return None
    return services().flows.start(params, browser_id(), step, **fields)


def _invalid_request_page(description: str) -> tuple[str, int]:
    return error_page(
        _("The login request is not valid"),
        _("The application that sent you here made an invalid request."),
        error="invalid_request",
        description=description,
    )


def restart_page() -> tuple[str, int]:
    return error_page(
        _("Please start again"),
        _(
            "This login took too long or was opened in another browser. "
            "Go back to the application and log in again."
        ),
        status=400,
    )


def continue_flow(flow: Flow) -> Any:
    """Where a flow goes after a step: to consent if still needed, else back to
    the client with a code."""
    sso = current_sso()
    if sso is None or sso.user_id != flow.user_id:
        return restart_page()
    req = _authorization_request(flow.params)
    try:
        grant, redirect_uri = _validate(req)
        prompts = set(flow.params.get("prompt", "").split())
        if not flow.consented and _needs_consent(
            sso, grant.request.client, grant.request.scope, prompts
        ):
            flow.step = Step.CONSENT
            services().flows.save(flow)
            return redirect(url_for("consent.show", flow=flow.id))
        services().flows.finish(flow)
        return issue_code(grant, redirect_uri, sso)
    except OAuth2Error as error:
        services().flows.finish(flow)
        return _error_response(error, flow.params.get("state"))


def deny_flow(flow: Flow) -> Any:
    """The user said no: ``access_denied`` to the client (RFC 6749 §4.1.2.1)."""
    services().flows.finish(flow)
    try:
        _, redirect_uri = _validate(_authorization_request(flow.params))
        raise AccessDeniedError("The user denied the request.", redirect_uri=redirect_uri)
    except OAuth2Error as error:
        return _error_response(error, flow.params.get("state"))


@bp.errorhandler(InsecureTransportError)
def insecure_transport(error: InsecureTransportError) -> Response:
    """Plain HTTP to a host that is not loopback (a deployment without TLS, or
    a proxy not trusted by ``IDP_TRUSTED_PROXIES``): refused, as Authlib does,
    with its OAuth error rather than a server error."""
    return Response(
        json.dumps(dict(error.get_body())), status=error.status_code, headers=error.get_headers()
    )


# -- token, userinfo, revocation, introspection ------------------------------------
@bp.post("/token")
@csrf.exempt
def token() -> Response:
    repeated = sorted(name for name, values in request.form.lists() if len(values) > 1)
    if repeated:  # RFC 6749 §3.2: parameters must not be included more than once
        error = InvalidRequestError(f"Repeated parameter: {', '.join(repeated)}.")
        return Response(
            json.dumps(dict(error.get_body())),
            status=error.status_code,
            headers=error.get_headers(),
        )
    response: Response = services().server.create_token_response()
    return response


def _bearer_token() -> str | None:
    """RFC 6750 §2.1 header or §2.2 form body; never the query string."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token")
    return None


def _bearer_error(error: str, description: str, status: int) -> Response:
    response = Response(
        json.dumps({"error": error, "error_description": description}),
        status=status,
        mimetype="application/json",
    )
    response.headers["WWW-Authenticate"] = (
        f'Bearer error="{error}", error_description="{description}"'
    )
    return response


@bp.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
def userinfo() -> Response:
    """OIDC Core §5.3: the user's claims for the access token's scopes."""
    value = _bearer_token()
    if not value:
        response = Response(status=401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="userinfo"'
        return response
    try:
        token = services().tokens.verify_access_token(value)
    except InvalidTokenError as error:
        return _bearer_error("invalid_token", f"The access token is {error}.", 401)
    scopes = token.scope.split()
    if "openid" not in scopes:
        return _bearer_error("insufficient_scope", "The access token lacks the openid scope.", 403)
    user = services().tokens.userinfo_subject(get_session(), token)
    if user is None:
        return _bearer_error("invalid_token", "The grant of this token has ended.", 401)
    body = user_claims(user, scopes)
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/revoke")
@csrf.exempt
def revoke() -> Response:
    response: Response = services().server.create_endpoint_response("revocation")
    return response


@bp.post("/introspect")
@csrf.exempt
def introspect() -> Response:
    response: Response = services().server.create_endpoint_response("introspection")
    return response
