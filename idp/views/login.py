"""Logging in (journey J3): e-mail first, then the password, then a second
factor (authenticator app, SMS, emergency code), with "Prøv en anden måde" and
the forgotten-password reset.

Every step loads the flow at its own step. The authorization request answers
with the e-mail screen itself, and each screen's form with the next screen
(no redirect and second request in between; after an SMS is sent, a redirect,
so that a reload does not send another). A screen opened or a form sent again
for a step the flow has passed (a reload, the back button, a change of
language) gets the flow's current screen. Failed passwords and codes count
towards a temporary, progressively longer lock of the account (and a limit per
IP address); unknown e-mail addresses are treated exactly like known ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint
from flask import Response
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import Row
from sqlalchemy import Select
from sqlalchemy import bindparam
from sqlalchemy import select

from idp import clock
from idp.context import services
from idp.db import get_reader
from idp.db import get_recorder
from idp.db import get_session
from idp.invitations import send_password_reset_link
from idp.models import TotpCredential
from idp.models import User
from idp.models import WebAuthnCredential
from idp.notify import notify
from idp.oidc.views import FLOW_WINDOW_SECONDS
from idp.oidc.views import continue_flow
from idp.oidc.views import restart_page
from idp.oidc.views import start_flow
from idp.services import lockout
from idp.services import passkeys
from idp.services import recovery
from idp.services import sms
from idp.services import totp
from idp.services.accounts import BY_EMAIL
from idp.services.accounts import normalize_email
from idp.services.actions import PASSWORD_RESET
from idp.services.actions import ActionTokenError
from idp.services.audit import Origin
from idp.services.factors import ENROLLED_COLUMNS
from idp.services.factors import TOTP_COLUMNS
from idp.services.factors import Method
from idp.services.flows import Flow
from idp.services.flows import FlowError
from idp.services.flows import Kind
from idp.services.flows import Step
from idp.services.flows import StepError
from idp.services.lockout import AccountLockedError
from idp.services.ratelimit import TooManyAttemptsError
from idp.services.secrets import digest
from idp.web import browser_id
from idp.web import current_sso
from idp.web import password_policy_messages
from idp.web import set_sso_cookie
from idp.web import too_many_attempts_page

__all__ = ["bp", "current_screen", "identify_page", "origin"]

bp = Blueprint("login", __name__)

#: The "Gem min e-mailadresse til næste gang" cookie: the address only.
REMEMBER_COOKIE = "idp_email"
REMEMBER_SECONDS = 365 * 24 * 3600
#: Failed passwords allowed per IP address and window (accounts have the lockout).
FAILURES_PER_IP = 100
FAILURE_WINDOW_SECONDS = 15 * 60
#: acr values: what kind of authentication the session rests on.
ACR_ONE_FACTOR = "1fa"
ACR_TWO_FACTORS = "2fa"


def origin() -> Origin:
    return Origin(ip=request.remote_addr, user_agent=request.user_agent.string)


#: The password step's one statement: the account and which factors it has.
_ACCOUNT_AND_FACTORS = BY_EMAIL.add_columns(*ENROLLED_COLUMNS)
#: The authenticator code's: the account and its app's secret and last step.
_ACCOUNT_AND_APP = (
    select(User, *TOTP_COLUMNS)
    .outerjoin(TotpCredential, TotpCredential.user_id == User.id)
    .where(User.id == bindparam("id"))
)

#: The screen of each step of a login (the second factor's: its method's),
#: and of the enrolment a login goes through when the account must have a
#: second factor and has none.
SCREENS = {
    Step.IDENTIFY: "login.identify",
    Step.LOGIN: "login.password",
    Step.NEW_RECOVERY: "login.new_emergency_code",
    Step.CONSENT: "consent.show",
    Step.TOTP: "activation.authenticator",
    Step.SMS: "activation.phone",
    Step.SMS_VERIFY: "activation.phone_code",
    Step.RECOVERY: "activation.emergency_code",
    Step.FINISHED: "activation.finished",
}
SECOND_FACTOR_SCREENS = {
    Method.TOTP: "login.authenticator",
    Method.WEBAUTHN: "login.security_key",
    Method.SMS: "login.sms_code",
}


def _load(*steps: str) -> Flow:
    flow = services().flows.require(request.args.get("flow"), browser_id(), *steps)
    if flow.kind != Kind.LOGIN:
        raise FlowError("not a login")
    g.ui_locales = flow.params.get("ui_locales")
    return flow


def _user(flow: Flow, query: Select[Any] | None = None) -> Any:
    """The flow's active user; with ``query`` (the user by the parameter
    ``id``, and more columns), its row, read outside a transaction."""
    if query is None:
        user = get_session().get(User, flow.user_id) if flow.user_id else None
        found = user
    else:
        found = None
        if flow.user_id:
            reader = get_reader()
            found = reader.execute(query, {"id": flow.user_id}).first()
            reader.close()  # its connection back to the pool now
        user = found[0] if found is not None else None
    if user is None or not user.is_active:
        raise FlowError("no user in this flow")
    return found


def current_screen(error: FlowError) -> Any:
    """The answer to a login screen whose flow failed to load: a login of
    this browser at another step than the screen's gets its current screen
    (303); anything else (unknown, expired, another browser's, not a login)
    the start-again page."""
    flow = error.flow if isinstance(error, StepError) else None
    if flow is None or flow.kind != Kind.LOGIN:
        return restart_page()
    if flow.step == Step.SECOND_FACTOR:
        endpoint = SECOND_FACTOR_SCREENS.get(flow.method or "", "login.methods")
    else:
        endpoint = SCREENS.get(flow.step)
    if endpoint is None:
        return restart_page()
    return redirect(url_for(endpoint, flow=flow.id), 303)


def at_step(
    step: str, *, user_on_get: bool = True, query: Select[Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the view with the login flow at ``step`` and its user (the flow
    checked for kind and browser, the user for being there and active); a
    flow at another step gets its current screen, anything else the
    start-again page. Without ``user_on_get`` a page
    that needs nothing of the account is shown without reading it (``None``);
    its form's answer reads and checks it. With ``query`` the view gets its
    row instead of the user (see :func:`_user`)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                flow = _load(step)
                user = _user(flow, query) if user_on_get or request.method != "GET" else None
            except FlowError as error:
                return current_screen(error)
            return view(flow, user, *args, **kwargs)

        return wrapped

    return decorate


def _render(template: str, flow: Flow | None, status: int = 200, **context: Any) -> Any:
    client = services().clients.get(flow.client_id) if flow and flow.client_id else None
    name = client.display_name if client else services().settings.brand_name
    page = render_template(f"login/{template}.html", flow=flow, client_name=name, **context)
    return page, status


def _go(flow: Flow, step: str, endpoint: str) -> Any:
    services().flows.advance(flow, step)
    return redirect(url_for(endpoint, flow=flow.id))


def _wait_message(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return _("Too many attempts. Try again in %(minutes)d minutes.", minutes=minutes)


# -- e-mail first ----------------------------------------------------------------
def identify_page(flow: Flow) -> Any:
    """The e-mail screen, pre-filled from the flow, ``login_hint`` or the
    remembered address. Its address for the language switch is the flow's
    (the authorization request's would start another flow)."""
    g.ui_locales = flow.params.get("ui_locales")
    g.screen_path = url_for("login.identify", flow=flow.id)
    remembered = request.cookies.get(REMEMBER_COOKIE, "")
    email = flow.email or flow.params.get("login_hint") or remembered
    return _render(
        "identify", flow, email=email, remember=bool(remembered), options=_passkey_options(flow)
    )


@bp.route("/login", methods=["GET", "POST"])
def identify() -> Any:
    try:
        flow = _load(Step.IDENTIFY)
    except FlowError as error:
        return current_screen(error)
    if request.method == "GET":
        return identify_page(flow)

    email = normalize_email(request.form.get("email", ""))
    if "@" not in email or len(email) > 320:
        return _render(
            "identify",
            flow,
            400,
            email=email,
            options=_passkey_options(flow),
            error=_("Enter a valid e-mail address."),
        )
    flow.email = email
    services().flows.advance(flow, Step.LOGIN)
    response = make_response(_render("password", flow, email=email))
    remembered = request.cookies.get(REMEMBER_COOKIE, "")
    if request.form.get("remember") == "yes":
        response.set_cookie(
            REMEMBER_COOKIE,
            email,
            max_age=REMEMBER_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=services().settings.secure_cookies,
        )
    elif remembered:
        response.delete_cookie(REMEMBER_COOKIE)
    return response


def _passkey_options(flow: Flow) -> str:
    """A fresh challenge for a passwordless login in this flow."""
    return services().passkeys.authentication_options(get_session(), f"login:{flow.id}")


@bp.route("/login/passkey", methods=["GET", "POST"])
def passkey() -> Any:
    """ "Log ind med sikkerhedsnøgle eller biometri": a discoverable passkey
    with user verification, no e-mail typed. The e-mail screen offers it too,
    as a button and in the browser's autofill (conditional UI)."""
    try:
        flow = _load(Step.IDENTIFY)
    except FlowError as error:
        return current_screen(error)
    if request.method == "GET":
        return _render("passkey", flow, options=_passkey_options(flow))
    svc = services()
    session = get_session()
    try:
        verified = svc.passkeys.authenticate(
            session, f"login:{flow.id}", request.form.get("credential", "")
        )
    except passkeys.CeremonyError as error:
        _passkey_failed(flow, error, None)
        message = _(
            "The security key or passkey could not be used. Try again or log in with your e-mail address."
        )
        return _render("passkey", flow, 400, options=_passkey_options(flow), error=message)
    # No lockout check: a lock answers guessing, and a passkey cannot be
    # guessed, so a lock someone provoked with wrong passwords does not keep
    # the owner out.
    flow.user_id = verified.user.id
    flow.auth_time = clock.now()
    # A passkey with user verification is something you have and something
    # you are or know: two factors on its own.
    return complete(flow, verified.user, [verified.amr, "mfa"])


def _passkey_failed(flow: Flow, error: Exception, user: User | None) -> None:
    svc = services()
    if isinstance(error, passkeys.ClonedAuthenticatorError):
        svc.audit.record(
            get_session(),
            "webauthn.cloned",
            origin(),
            subject_id=error.credential.user_id,
            client_id=flow.client_id,
            credential=error.credential.id,
        )
    svc.audit.record(
        get_session(),
        "login.failed",
        origin(),
        subject_id=user.id if user else None,
        client_id=flow.client_id,
        reason="webauthn",
    )


# -- password ---------------------------------------------------------------------
@bp.route("/login/password", methods=["GET", "POST"])
def password() -> Any:
    try:
        flow = _load(Step.LOGIN)
    except FlowError as error:
        return current_screen(error)
    email = flow.email or ""
    if request.method == "GET":
        return _render("password", flow, email=email)
    if request.form.get("action") == "back":
        # The back arrow: another address, and the remembered one is forgotten.
        flow.email = None
        response = make_response(_go(flow, Step.IDENTIFY, "login.identify"))
        response.delete_cookie(REMEMBER_COOKIE)
        return response

    svc = services()
    # Read outside a transaction: the account and its factors, one round trip.
    session = get_reader()
    try:
        svc.limiter.check("login-ip", request.remote_addr or "-", FAILURES_PER_IP)
        svc.lockout.attempt(email, lockout.PASSWORD)
    except TooManyAttemptsError as error:
        return _render("password", flow, 429, email=email, error=_wait_message(error.resets_in))
    row = svc.accounts.authenticate_row(
        session, email, request.form.get("password", ""), _ACCOUNT_AND_FACTORS
    )
    session.close()  # its connection back to the pool now (the rows stay loaded)
    if row is None:
        known = svc.accounts.find(email)
        subject_id = known.id if known else None
        svc.audit.record(
            session,
            "login.failed",
            origin(),
            subject_id=subject_id,
            client_id=flow.client_id,
            reason="password",
        )
        with contextlib.suppress(TooManyAttemptsError):
            svc.limiter.hit(
                "login-ip", request.remote_addr or "-", FAILURES_PER_IP, FAILURE_WINDOW_SECONDS
            )
        locked_for = svc.lockout.failed(email, lockout.PASSWORD)
        if locked_for:
            svc.audit.record(
                session, "account.locked", origin(), subject_id=subject_id, seconds=locked_for
            )
        return _render(
            "password",
            flow,
            400,
            email=email,
            error=_("The e-mail address or the password is wrong."),
        )
    svc.lockout.succeeded(email, lockout.PASSWORD)
    user, *enrolled = row
    flow.password_stamp = password_stamp(user)
    flow.user_id = user.id
    flow.amr = ["pwd"]
    flow.auth_time = clock.now()
    return _after_password(flow, user, tuple(enrolled))


def _after_password(flow: Flow, user: User, enrolled: tuple[Any, ...]) -> Any:
    """Second factor if enrolled (its screen); enrolment if required and
    missing; else done."""
    methods = services().factors.methods(get_session(), user, enrolled)
    if Method.WEBAUTHN in methods:
        flow.method = Method.WEBAUTHN
        services().flows.advance(flow, Step.SECOND_FACTOR)
        return _security_key_page(flow, user)
    if Method.TOTP in methods:
        flow.method = Method.TOTP
        services().flows.advance(flow, Step.SECOND_FACTOR)
        return _render("totp", flow)
    if Method.SMS in methods:
        flow.method = Method.SMS
        services().flows.advance(flow, Step.SECOND_FACTOR)
        return _send_sms(flow, user)
    if user.mfa_required:
        # J3: an account that must have two-step verification enrols it now.
        services().flows.advance(flow, Step.TOTP)
        return redirect(url_for("activation.authenticator", flow=flow.id))
    return complete(flow, user, ["pwd"])


def password_stamp(user: User) -> str:
    return _stamp_of(user.password_hash)


def _stamp_of(password_hash: str | None) -> str:
    return digest(password_hash or "")[:16]


def complete(flow: Flow, user: User, amr: list[str]) -> Response:
    """The login is done: recorded (committed with what the last factor's
    check wrote and left to commit, a passkey's signature counter say), then a
    fresh SSO session (a new cookie, so a planted one is useless), then on to
    the client or the page that asked for the login."""
    svc = services()
    # With what the last factor's check wrote, if that is still to commit.
    session = get_recorder()
    if flow.password_stamp and flow.password_stamp != password_stamp(user):
        # The password changed (a reset) after this flow checked it.
        session.commit()  # the factor is used all the same
        svc.flows.finish(flow)
        return make_response(restart_page())
    svc.audit.record(
        session,
        "login.succeeded",
        origin(),
        subject_id=user.id,
        client_id=flow.client_id,
        amr=amr,
    )
    previous = current_sso()
    if previous is not None:
        svc.sessions.replace(previous)
    acr = ACR_TWO_FACTORS if "mfa" in amr else ACR_ONE_FACTOR
    cookie, sso = svc.sessions.create(
        user.id,
        amr=amr,
        acr=acr,
        auth_time=flow.auth_time or clock.now(),
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
        save=False,  # written with the client it reaches, if it reaches one now
    )
    g.sso = sso
    flow.amr = amr
    if flow.params:
        response = make_response(continue_flow(flow))
    else:
        svc.flows.finish(flow)
        response = make_response(redirect(flow.return_to or url_for("login.account")))
    svc.sessions.save(sso)
    if flow.password_stamp and _password_changed(user, flow.password_stamp):
        # A reset committed while this login finished: its ending of the
        # user's sessions may have come before this session was written, so
        # this login ends it (its code, if one was made, makes no grant).
        svc.sessions.revoke(sso)
        svc.tokens.deny_sessions([sso.id])
        svc.flows.finish(flow)
        return make_response(restart_page())
    return set_sso_cookie(response, cookie)


def _password_changed(user: User, stamp: str) -> bool:
    """Whether the account's password is no longer the one ``stamp`` was
    taken from, read afresh (a statement of its own, outside any
    transaction's snapshot) from the database: a reset committed since."""
    query = select(User.password_hash).where(User.id == user.id)
    current = get_reader().execute(query).scalar()
    return _stamp_of(current) != stamp


# -- second factor ----------------------------------------------------------------
def _code_failed_count(user: User) -> str | None:
    """Count a failed second factor towards the lock; the wait message if it locks."""
    svc = services()
    locked_for = svc.lockout.failed(user.email, lockout.SECOND_FACTOR)
    if locked_for:
        svc.audit.record(
            get_session(), "account.locked", origin(), subject_id=user.id, seconds=locked_for
        )
        return _wait_message(locked_for)
    return None


def _code_failed(flow: Flow, user: User, method: str) -> str | None:
    """Count a wrong code; returns the message to show when it locks the account."""
    services().audit.record(
        get_session(),
        "login.failed",
        origin(),
        subject_id=user.id,
        client_id=flow.client_id,
        reason=method,
    )
    return _code_failed_count(user)


@bp.route("/login/code", methods=["GET", "POST"])
@at_step(Step.SECOND_FACTOR, user_on_get=False, query=_ACCOUNT_AND_APP)
def authenticator(flow: Flow, found: Row[Any] | None) -> Any:
    """ "Find koden i din Authenticator app"."""
    if found is None:  # the page
        return _render("totp", flow)
    user, *app = found
    try:
        services().lockout.attempt(user.email, lockout.SECOND_FACTOR)
    except AccountLockedError as error:
        return _render("totp", flow, 429, error=_wait_message(error.resets_in))
    try:
        # The time step written by itself (a code used is used, whatever
        # follows), then the login recorded: no transaction round trips.
        services().factors.verify_totp(
            get_reader(), user.id, request.form.get("code", ""), tuple(app)
        )
    except totp.CodeReusedError:
        message = _code_failed(flow, user, "totp")
        return _render(
            "totp",
            flow,
            400,
            error=message or _("This code was already used. Wait for the next one."),
        )
    except totp.InvalidCodeError:
        message = _code_failed(flow, user, "totp")
        return _render("totp", flow, 400, error=message or _("The code is not correct. Try again."))
    services().lockout.succeeded(user.email, lockout.SECOND_FACTOR)
    return complete(flow, user, ["pwd", "otp", "mfa"])


@bp.route("/login/key", methods=["GET", "POST"])
@at_step(Step.SECOND_FACTOR)
def security_key(flow: Flow, user: User) -> Any:
    """A passkey or security key as the second factor, after the password."""
    svc = services()
    session = get_session()
    scope = _key_scope(flow)
    if request.method == "GET":
        return _security_key_page(flow, user)
    try:
        svc.lockout.attempt(user.email, lockout.SECOND_FACTOR)
        verified = svc.passkeys.authenticate(
            session, scope, request.form.get("credential", ""), user
        )
    except AccountLockedError as error:
        return _security_key_page(flow, user, 429, error=_wait_message(error.resets_in))
    except passkeys.CeremonyError as error:
        _passkey_failed(flow, error, user)
        message = _code_failed_count(user) or _(
            "The security key could not be used. Try again or choose another way."
        )
        return _security_key_page(flow, user, 400, error=message)
    svc.lockout.succeeded(user.email, lockout.SECOND_FACTOR)
    return complete(flow, user, ["pwd", verified.amr, "mfa"])


def _key_scope(flow: Flow) -> str:
    """Where the second-factor key challenge of this login is kept: the
    screen stores it there and the answer is checked against it."""
    return f"second:{flow.id}"


def _security_key_page(flow: Flow, user: User, status: int = 200, **context: Any) -> Any:
    """The security key screen with a fresh challenge for the user's keys."""
    options = services().passkeys.authentication_options(get_session(), _key_scope(flow), user)
    return _render("security_key", flow, status, options=options, **context)


@bp.get("/login/methods")
@at_step(Step.SECOND_FACTOR)
def methods(flow: Flow, user: User) -> Any:
    """ "Prøv en anden måde": only the methods this user has enrolled."""
    enrolled = services().factors.methods(get_session(), user)
    return _render("methods", flow, methods=enrolled, phone_end=_phone_end(user))


def _phone_end(user: User) -> str:
    """The last three digits of the user's number ("der slutter med 160")."""
    return sms.mask_phone(user.phone_number)[-3:] if user.phone_number else ""


def _sms_text(code: str, reference: str) -> str:
    return _(
        "Your verification code is %(code)s. Reference number: %(reference)s",
        code=code,
        reference=reference,
    )


def _send_sms(flow: Flow, user: User) -> Any:
    try:
        challenge = services().sms.send(
            user.phone_number or "", request.remote_addr or "-", _sms_text
        )
    except (TooManyAttemptsError, sms.ResendTooSoonError) as error:
        if flow.sms_challenge_id and flow.method == Method.SMS:
            return _render(
                "sms", flow, 429, phone_end=_phone_end(user), error=_wait_message(error.resets_in)
            )
        return too_many_attempts_page(error.resets_in)
    except sms.SmsDeliveryError:
        return _render(
            "methods",
            flow,
            503,
            methods=services().factors.methods(get_session(), user),
            phone_end=_phone_end(user),
            error=_(
                "We could not send the SMS right now. Try again in a moment, or choose another way."
            ),
        )
    flow.method = Method.SMS
    flow.sms_challenge_id = challenge.id
    flow.sms_reference = challenge.reference
    services().flows.save(flow)
    return redirect(url_for("login.sms_code", flow=flow.id))


@bp.post("/login/sms/send")
@at_step(Step.SECOND_FACTOR)
def sms_send(flow: Flow, user: User) -> Any:
    if not (user.phone_number and user.phone_number_verified):
        return restart_page()
    return _send_sms(flow, user)


@bp.route("/login/sms", methods=["GET", "POST"])
@at_step(Step.SECOND_FACTOR)
def sms_code(flow: Flow, user: User) -> Any:
    if not flow.sms_challenge_id:
        return redirect(url_for("login.methods", flow=flow.id))
    context = {"phone_end": _phone_end(user)}
    if request.method == "GET":
        return _render("sms", flow, **context)
    try:
        services().lockout.attempt(user.email, lockout.SECOND_FACTOR)
        services().sms.verify(flow.sms_challenge_id, request.form.get("code", ""))
    except AccountLockedError as error:
        return _render("sms", flow, 429, error=_wait_message(error.resets_in), **context)
    except sms.WrongCodeError as error:
        message = _code_failed(flow, user, "sms") or _(
            "The code is not correct. %(left)d attempts left.", left=error.attempts_left
        )
        return _render("sms", flow, 400, error=message, **context)
    except (sms.ChallengeLockedError, sms.ChallengeExpiredError):
        _code_failed(flow, user, "sms")
        flow.sms_challenge_id = None
        services().flows.save(flow)
        return _render(
            "sms",
            flow,
            400,
            expired=True,
            error=_("The code has expired or was typed wrong too many times. Send a new one."),
            **context,
        )
    services().lockout.succeeded(user.email, lockout.SECOND_FACTOR)
    return complete(flow, user, ["pwd", "sms", "mfa"])


@bp.route("/login/emergency", methods=["GET", "POST"])
@at_step(Step.SECOND_FACTOR)
def emergency(flow: Flow, user: User) -> Any:
    """The one-time emergency code: accepted once, in any case, with or without dashes."""
    if request.method == "GET":
        return _render("emergency", flow)
    svc = services()
    try:
        svc.lockout.attempt(user.email, lockout.SECOND_FACTOR)
    except AccountLockedError as error:
        return _render("emergency", flow, 429, error=_wait_message(error.resets_in))
    if not svc.factors.use_recovery_code(get_session(), user.id, request.form.get("code", "")):
        message = _code_failed(flow, user, "emergency_code")
        return _render(
            "emergency", flow, 400, error=message or _("The emergency code is not correct.")
        )
    svc.lockout.succeeded(user.email, lockout.SECOND_FACTOR)
    svc.audit.record(
        get_session(), "emergency_code.used", origin(), subject_id=user.id, client_id=flow.client_id
    )
    notify("emergency_code_used", user)
    flow.amr = ["pwd", "otp", "mfa"]
    return _go(flow, Step.NEW_RECOVERY, "login.new_emergency_code")


@bp.route("/login/emergency/new", methods=["GET", "POST"])
@at_step(Step.NEW_RECOVERY)
def new_emergency_code(flow: Flow, user: User) -> Any:
    """After an emergency code: the user saves a new one, or turns two-step
    verification off (and, if the account requires it, sets it up again)."""
    svc = services()
    if flow.recovery_code is None:
        flow.recovery_code = svc.secret_box.encrypt(recovery.generate_code())
        svc.flows.save(flow)
    code = svc.secret_box.decrypt(flow.recovery_code)
    if request.method == "GET":
        return _render("new_emergency", flow, code=code)
    session = get_session()
    if request.form.get("action") == "disable":
        flow.recovery_code = None
        if user.mfa_required:
            # The account must have a second factor: it is set up again, and
            # the old factors go only once the new app is confirmed, so an
            # abandoned page leaves no account with the password alone.
            flow.amr = ["pwd"]
            flow.replace_factors = True
            svc.flows.advance(flow, Step.TOTP)
            return redirect(url_for("activation.authenticator", flow=flow.id))
        svc.factors.remove_all(session, user.id)
        svc.audit.record(session, "mfa.disabled", origin(), subject_id=user.id, actor_id=user.id)
        notify("mfa_disabled", user)
        return complete(flow, user, ["pwd"])
    if request.form.get("saved") != "yes":
        return _render(
            "new_emergency",
            flow,
            400,
            code=code,
            error=_("Tick the box to confirm that you have saved the code."),
        )
    svc.factors.save_recovery_code(session, user.id, code)
    flow.recovery_code = None
    return complete(flow, user, ["pwd", "otp", "mfa"])


# -- forgotten password ----------------------------------------------------------------
@bp.route("/login/forgot", methods=["GET", "POST"])
def forgot() -> Any:
    """ "Har du glemt din adgangskode?": a reset link by e-mail. The answer is
    the same whether or not the address has an account."""
    flow = None
    with contextlib.suppress(FlowError):
        flow = _load(Step.LOGIN, Step.IDENTIFY)
    hours = services().settings.action_link_seconds // 3600
    if request.method == "GET":
        return _render("forgot", flow, email=(flow.email if flow else "") or "", hours=hours)
    svc = services()
    email = normalize_email(request.form.get("email", ""))
    try:
        svc.limiter.hit("reset-ip", request.remote_addr or "-", limit=10, window_seconds=3600)
        if email:
            svc.limiter.hit("reset-email", email, limit=3, window_seconds=3600)
    except TooManyAttemptsError as error:
        return too_many_attempts_page(error.resets_in)
    # Looking the address up and e-mailing happen after the answer, so its
    # timing does not tell whether the address has an account.
    client_id = flow.client_id if flow and flow.client_id else None
    svc.background.submit(_send_reset_link, email, client_id, origin())
    return _render("forgot_sent", flow, hours=hours)


def _send_reset_link(email: str, client_id: str | None, where: Origin) -> None:
    """(In the background.) E-mail a reset link if the address has an active account."""
    svc = services()
    user = svc.accounts.find(email) if "@" in email else None
    if user is None or not user.is_active:
        return
    session = get_session()
    send_password_reset_link(session, session.merge(user), client_id)
    svc.audit.record(session, "password.reset_requested", where, subject_id=user.id)


@bp.get("/reset/<token>")
def reset_start(token: str) -> Any:
    try:
        row = services().actions.peek(get_session(), token, PASSWORD_RESET)
    except ActionTokenError:
        return _render("reset_invalid", None, 400)
    flow = services().flows.start(
        {},
        browser_id(),
        Step.RESET,
        kind=Kind.RESET,
        user_id=row.user_id,
        client_hint=row.client_id,
        token_hash=row.token_hash,
    )
    return redirect(url_for("login.reset", flow=flow.id))


@bp.route("/reset/password", methods=["GET", "POST"])
def reset() -> Any:
    try:
        flow = services().flows.require(request.args.get("flow"), browser_id(), Step.RESET)
        if flow.kind != Kind.RESET or not flow.token_hash:
            raise FlowError("not a reset")
        user = _user(flow)
    except FlowError:
        return restart_page()
    if request.method == "GET":
        return _render("reset", flow)
    svc = services()
    new = request.form.get("password", "")
    errors = password_policy_messages(svc.password_policy.check(new, user.email))
    if new != request.form.get("confirm", ""):
        errors.append(_("The two passwords are not the same."))
    if errors:
        return _render("reset", flow, 400, errors=errors)
    session = get_session()
    try:
        svc.actions.consume(session, flow.token_hash)
    except ActionTokenError:
        svc.flows.finish(flow)
        return _render("reset_invalid", None, 400)
    user = session.merge(user)
    user.password_hash = svc.accounts.passwords.hash(new)
    session.commit()
    # Older links die; whoever knew the old password is logged out everywhere,
    # in the products too (their back-channel logouts); the owner of the
    # mailbox is no longer locked out.
    # The change is recorded first, and told whatever befalls the logouts.
    svc.actions.void(session, user.id)
    svc.audit.record(
        session, "password.changed", origin(), subject_id=user.id, actor_id=user.id, via="reset"
    )
    svc.lockout.lift(user.email)
    try:
        svc.logout.end_user(session, user.id, origin(), actor_id=user.id)
    finally:
        notify("password_changed", user)  # may wait on the mail server
    svc.flows.finish(flow)
    client = svc.clients.get(flow.client_hint or svc.settings.default_client_id)
    target = (
        client.initiate_login_uri
        if client and client.initiate_login_uri
        else url_for("login.account")
    )
    response = make_response(_render("reset_done", None, target=target))
    return set_sso_cookie(response, None)


# -- the IdP's own account page ------------------------------------------------------------
#: How recent the login must be to add or remove a passkey.
RECENT_LOGIN_SECONDS = 15 * 60


def _account_login() -> Any:
    """Log in (again: the flow always asks) and come back to the account page."""
    flow = start_flow({}, Step.IDENTIFY, return_to=url_for("login.account"))
    if flow is None:
        return too_many_attempts_page(FLOW_WINDOW_SECONDS)
    return redirect(url_for("login.identify", flow=flow.id))


def _account_page(user: User, sso: Any, status: int = 200, **context: Any) -> Any:
    svc = services()
    session = get_session()
    names = {
        Method.WEBAUTHN: _("Passkey or security key"),
        Method.TOTP: _("Authenticator app"),
        Method.SMS: _("SMS"),
        Method.RECOVERY: _("Emergency code"),
    }
    recent = clock.now() - sso.auth_time <= RECENT_LOGIN_SECONDS
    page = render_template(
        "account/index.html",
        user=user,
        methods=svc.factors.methods(session, user),
        method_names=names,
        keys=svc.passkeys.credentials(session, user.id),
        options=svc.passkeys.registration_options(session, user, f"account:{sso.id}")
        if recent
        else None,
        recent=recent,
        **context,
    )
    return page, status


def _account_user() -> tuple[Any, User] | None:
    sso = current_sso()
    user = get_session().get(User, sso.user_id) if sso else None
    return (sso, user) if sso and user else None


@bp.get("/account")
def account() -> Any:
    """The user's own page: profile, second factors, passkeys, logout."""
    found = _account_user()
    if found is None or request.args.get("again"):
        return _account_login()
    sso, user = found
    return _account_page(user, sso, notice=request.args.get("done"))


@bp.post("/account/passkeys")
def add_passkey() -> Any:
    found = _account_user()
    if found is None:
        return _account_login()
    sso, user = found
    svc = services()
    session = get_session()
    if clock.now() - sso.auth_time > RECENT_LOGIN_SECONDS:
        return _account_page(user, sso, 403, error=_("Log in again to add a passkey."))
    name = request.form.get("name", "").strip() or _("Passkey")
    try:
        key = svc.passkeys.register(
            session, user, f"account:{sso.id}", request.form.get("credential", ""), name
        )
    except passkeys.CeremonyError:
        return _account_page(user, sso, 400, error=_("The passkey could not be added. Try again."))
    svc.audit.record(
        session, "passkey.added", origin(), subject_id=user.id, actor_id=user.id, credential=key.id
    )
    notify("passkey_added", user, key_name=key.name)
    return redirect(url_for("login.account", done="added"))


def _own_key(user: User, key_id: int) -> WebAuthnCredential | None:
    key = get_session().get(WebAuthnCredential, key_id)
    return key if key is not None and key.user_id == user.id else None


@bp.post("/account/passkeys/<int:key_id>/rename")
def rename_passkey(key_id: int) -> Any:
    found = _account_user()
    if found is None:
        return _account_login()
    sso, user = found
    key = _own_key(user, key_id)
    name = request.form.get("name", "").strip()
    if key is None or not name:
        return _account_page(user, sso, 400, error=_("Give the passkey a name."))
    key.name = name[:100]
    get_session().commit()
    services().audit.record(
        get_session(),
        "passkey.renamed",
        origin(),
        subject_id=user.id,
        actor_id=user.id,
        credential=key.id,
    )
    return redirect(url_for("login.account", done="renamed"))


@bp.post("/account/passkeys/<int:key_id>/delete")
def delete_passkey(key_id: int) -> Any:
    found = _account_user()
    if found is None:
        return _account_login()
    sso, user = found
    session = get_session()
    key = _own_key(user, key_id)
    if key is None:
        return _account_page(user, sso, 404, error=_("That passkey does not exist."))
    if clock.now() - sso.auth_time > RECENT_LOGIN_SECONDS:
        return _account_page(user, sso, 403, error=_("Log in again to remove a passkey."))
    # Lock the user's row, so two removals at once cannot both pass the check.
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    if user.password_hash is None and len(services().passkeys.credentials(session, user.id)) == 1:
        # Without a password this key is the only way in.
        return _account_page(
            user,
            sso,
            400,
            error=_(
                "This is your only way to log in, so it cannot be removed. Add another passkey first."
            ),
        )
    name = key.name
    session.delete(key)
    session.commit()
    notify("passkey_removed", user, key_name=name)
    services().audit.record(
        session,
        "passkey.removed",
        origin(),
        subject_id=user.id,
        actor_id=user.id,
        credential=key_id,
    )
    return redirect(url_for("login.account", done="removed"))
