"""Activation from an invitation (journeys J1 and J2): set a password, enrol an
authenticator app, optionally a phone for SMS, save the emergency code.

Each view loads the flow at its own step, so no step can be skipped by typing
its URL, repeated after it is done, or continued from another browser.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from markupsafe import Markup

from idp import clock
from idp.context import services
from idp.db import get_session
from idp.models import User
from idp.notify import notify
from idp.oidc.views import continue_flow
from idp.oidc.views import restart_page
from idp.services import passkeys
from idp.services import recovery
from idp.services import sms
from idp.services import totp
from idp.services.actions import ACTIVATION
from idp.services.actions import ActionTokenError
from idp.services.actions import ExpiredLinkError
from idp.services.actions import UsedLinkError
from idp.services.flows import Flow
from idp.services.flows import FlowError
from idp.services.flows import Kind
from idp.services.flows import Step
from idp.services.ratelimit import TooManyAttemptsError
from idp.web import browser_id
from idp.web import password_policy_messages
from idp.web import set_sso_cookie
from idp.web import too_many_attempts_page

__all__ = ["bp"]

bp = Blueprint("activation", __name__, url_prefix="/activate")

ACR_TWO_FACTORS = "2fa"


def _load(step: str) -> Flow:
    """The activation flow at ``step``; a login flow may use the enrolment
    steps too, once its password step is done (J3: enrolment before the code)."""
    flow = services().flows.require(request.args.get("flow"), browser_id(), step)
    enrolling_login = flow.kind == Kind.LOGIN and "pwd" in flow.amr and step != Step.PASSWORD
    if (flow.kind != Kind.ACTIVATION and not enrolling_login) or flow.user_id is None:
        raise FlowError("not an activation")
    g.ui_locales = flow.params.get("ui_locales")
    return flow


def _user(flow: Flow) -> User:
    user = get_session().get(User, flow.user_id)
    if user is None or not user.is_active:
        raise FlowError("the account is gone or disabled")
    return user


def _audit(event: str, user: User, **details: Any) -> None:
    from idp.views.login import origin

    services().audit.record(
        get_session(), event, origin(), subject_id=user.id, actor_id=user.id, **details
    )


def _go(flow: Flow, step: str, endpoint: str) -> Any:
    services().flows.advance(flow, step)
    return redirect(url_for(endpoint, flow=flow.id))


def _render(template: str, flow: Flow, status: int = 200, **context: Any) -> Any:
    client = services().clients.get(flow.client_hint or flow.client_id or None)
    return (
        render_template(
            f"activation/{template}.html",
            flow=flow,
            client_name=client.display_name if client else services().settings.brand_name,
            back_url=(client.initiate_login_uri if client else None) or "/",
            **context,
        ),
        status,
    )


def _link_problem(error: ActionTokenError) -> Any:
    if isinstance(error, ExpiredLinkError):
        title = _("The link has expired")
    elif isinstance(error, UsedLinkError):
        title = _("The link has already been used")
    else:
        title = _("The link is not valid")
    return render_template("activation/link_problem.html", title=title), 400


@bp.get("/<token>")
def start(token: str) -> Any:
    """The link from the invitation: check it, then start the flow (the token
    leaves the URL here, so it does not leak through history or referrers)."""
    try:
        row = services().actions.peek(get_session(), token, ACTIVATION)
    except ActionTokenError as error:
        return _link_problem(error)
    flow = services().flows.start(
        {},
        browser_id(),
        Step.PASSWORD,
        kind=Kind.ACTIVATION,
        user_id=row.user_id,
        client_hint=row.client_id,
        token_hash=row.token_hash,
    )
    return redirect(url_for("activation.password", flow=flow.id))


@bp.post("/request-link")
def request_link() -> Any:
    """Ask for a new activation link. The answer is the same whether or not the
    address has an account; requests are limited per address and per IP."""
    email = request.form.get("email", "").strip().lower()
    limiter = services().limiter
    try:
        limiter.hit("link-ip", request.remote_addr or "-", limit=10, window_seconds=3600)
        if email:
            limiter.hit("link-email", email, limit=3, window_seconds=3600)
    except TooManyAttemptsError as error:
        return too_many_attempts_page(error.resets_in)
    # After the answer, so its timing does not tell whether the address has an account.
    services().background.submit(_send_new_link, email)
    return render_template("activation/link_sent.html")


def _send_new_link(email: str) -> None:
    """(In the background.) A new activation link, if the address has an active account."""
    from idp.invitations import send_activation_link

    user = services().accounts.find(email) if email else None
    if user is not None and user.is_active:
        send_activation_link(get_session(), get_session().merge(user), None)


@bp.route("/password", methods=["GET", "POST"])
def password() -> Any:
    try:
        flow = _load(Step.PASSWORD)
        user = _user(flow)
    except FlowError:
        return restart_page()
    if request.method == "GET":
        offer = _may_use_passkey_instead(get_session(), get_session().merge(user))
        return _render("password", flow, offer_passkey=offer)

    new = request.form.get("password", "")
    errors = password_policy_messages(services().password_policy.check(new, user.email))
    if new != request.form.get("confirm", ""):
        errors.append(_("The two passwords are not the same."))
    if errors:
        return _render("password", flow, 400, errors=errors)
    session = get_session()
    try:
        if flow.token_hash:
            services().actions.consume(session, flow.token_hash)
    except ActionTokenError as error:
        services().flows.finish(flow)
        return _link_problem(error)
    user = session.merge(user)
    user.password_hash = services().accounts.passwords.hash(new)
    user.email_verified = True
    if user.activated_at is None:
        user.activated_at = clock.utcnow()
    session.commit()
    services().actions.void(session, user.id)
    _audit("password.changed", user, via="activation")
    if services().factors.has_second_factor(session, user):
        # J2: the account already has its factors; nothing is enrolled twice.
        return _go(flow, Step.FINISHED, "activation.finished")
    return _go(flow, Step.TOTP, "activation.authenticator")


@bp.route("/passkey", methods=["GET", "POST"])
def passkey() -> Any:
    """ "Log ind uden adgangskode": a passkey instead of a password, for a new
    account only. The account then has no password; the passkey (with user
    verification) is both factors, and an emergency code is saved next as
    the way back in if the device is lost. An account that already has a
    password or factors (J2) only sets its password here: the mailbox alone
    must not replace its second factor."""
    try:
        flow = _load(Step.PASSWORD)
        user = _user(flow)
    except FlowError:
        return restart_page()
    svc = services()
    session = get_session()
    user = session.merge(user)
    if not _may_use_passkey_instead(session, user):
        return redirect(url_for("activation.password", flow=flow.id))
    scope = f"activation:{flow.id}"
    if request.method == "GET":
        return _render(
            "passkey", flow, options=svc.passkeys.registration_options(session, user, scope)
        )
    try:
        # Not committed yet: the key and the use of the link are one transaction.
        key = svc.passkeys.register(
            session, user, scope, request.form.get("credential", ""), _("Passkey"), commit=False
        )
    except passkeys.CeremonyError:
        return _render(
            "passkey",
            flow,
            400,
            options=svc.passkeys.registration_options(session, user, scope),
            error=_("The passkey could not be created. Try again, or set a password instead."),
        )
    try:
        if flow.token_hash:
            svc.actions.consume(session, flow.token_hash)  # commits the key with it
        else:
            session.commit()
    except ActionTokenError as error:
        svc.flows.finish(flow)  # the key was rolled back with the link
        return _link_problem(error)
    user.email_verified = True
    if user.activated_at is None:
        user.activated_at = clock.utcnow()
    session.commit()
    svc.actions.void(session, user.id)
    _audit("passkey.added", user, credential=key.id, via="activation")
    notify("passkey_added", user, key_name=key.name)
    flow.amr = ["hwk" if not key.backup_eligible else "swk", "mfa"]
    return _go(flow, Step.RECOVERY, "activation.emergency_code")


def _may_use_passkey_instead(session: Any, user: User) -> bool:
    """Only a new account (no password, no factors) may start with a passkey."""
    return (
        user.password_hash is None
        and user.activated_at is None
        and not services().factors.methods(session, user)
    )


@bp.route("/totp", methods=["GET", "POST"])
def authenticator() -> Any:
    try:
        flow = _load(Step.TOTP)
        user = _user(flow)
    except FlowError:
        return restart_page()
    box = services().secret_box
    if flow.totp_secret is None:
        flow.totp_secret = box.encrypt(totp.generate_secret())
        services().flows.save(flow)
    secret = box.decrypt(flow.totp_secret)
    uri = totp.provisioning_uri(secret, user.email, services().settings.brand_name)
    # segno draws the SVG from our own URI: no user-supplied markup reaches it.
    qr = Markup(totp.qr_svg(uri))  # noqa: S704
    context = {"qr": qr, "key": totp.format_secret(secret), "uri": uri}
    if request.method == "GET":
        return _render("totp", flow, **context)
    try:
        step = totp.verify(secret, request.form.get("code", ""), None)
    except totp.InvalidCodeError:
        return _render("totp", flow, 400, error=_("The code is not correct. Try again."), **context)
    if flow.replace_factors:
        # After an emergency code (J3): the new app replaces every old factor.
        services().factors.remove_all(get_session(), user.id)
        _audit("mfa.disabled", user, replaced=True)
        flow.replace_factors = False
    services().factors.save_totp(get_session(), user.id, secret, step)
    _audit("factor.added", user, method="totp")
    flow.totp_secret = None
    flow.amr = ["pwd", "otp"]
    return _go(flow, Step.SMS, "activation.phone")


@bp.route("/sms", methods=["GET", "POST"])
def phone() -> Any:
    try:
        flow = _load(Step.SMS)
        _user(flow)
    except FlowError:
        return restart_page()
    if request.method == "GET":
        return _render("sms", flow, phone=flow.phone or "+45 ")
    if request.form.get("action") == "skip":
        return _go(flow, Step.RECOVERY, "activation.emergency_code")
    raw = request.form.get("phone", "")
    try:
        number = sms.parse_phone(raw, services().settings.sms_default_region)
    except sms.InvalidPhoneError:
        return _render("sms", flow, 400, phone=raw, error=_("That is not a valid phone number."))
    return _send_sms(flow, number, raw)


def _sms_text(code: str, reference: str) -> str:
    return _(
        "Your verification code is %(code)s. Reference number: %(reference)s",
        code=code,
        reference=reference,
    )


def _send_sms(flow: Flow, number: str, typed: str) -> Any:
    try:
        challenge = services().sms.send(number, request.remote_addr or "-", _sms_text)
    except (TooManyAttemptsError, sms.ResendTooSoonError) as error:
        return _render("sms", flow, 429, phone=typed, error=_wait_message(error.resets_in))
    except sms.SmsDeliveryError:
        return _render(
            "sms",
            flow,
            503,
            phone=typed,
            error=_(
                "We could not send the SMS right now. Try again in a moment, or skip this step."
            ),
        )
    flow.phone = number
    flow.sms_challenge_id = challenge.id
    return _go(flow, Step.SMS_VERIFY, "activation.phone_code")


def _wait_message(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return _("Too many attempts. Try again in %(minutes)d minutes.", minutes=minutes)


@bp.route("/sms/code", methods=["GET", "POST"])
def phone_code() -> Any:
    try:
        flow = _load(Step.SMS_VERIFY)
        user = _user(flow)
    except FlowError:
        return restart_page()
    if request.method == "GET":
        return _render("sms_code", flow)
    action = request.form.get("action")
    if action == "back":
        return _go(flow, Step.SMS, "activation.phone")
    if action == "resend" and flow.phone:
        return _send_sms(flow, flow.phone, flow.phone)
    try:
        services().sms.verify(flow.sms_challenge_id or "", request.form.get("code", ""))
    except sms.WrongCodeError as error:
        message = _("The code is not correct. %(left)d attempts left.", left=error.attempts_left)
        return _render("sms_code", flow, 400, error=message)
    except (sms.ChallengeLockedError, sms.ChallengeExpiredError):
        flow.sms_challenge_id = None
        services().flows.advance(flow, Step.SMS)
        return _render(
            "sms",
            flow,
            400,
            phone=flow.phone,
            error=_("The code has expired or was typed wrong too many times. Send a new one."),
        )
    session = get_session()
    user = session.merge(user)
    user.phone_number = flow.phone
    user.phone_number_verified = True
    session.commit()
    _audit("factor.added", user, method="sms")
    notify("phone_added", user, phone=sms.mask_phone(flow.phone or ""))
    flow.sms_challenge_id = None
    return _go(flow, Step.RECOVERY, "activation.emergency_code")


@bp.route("/emergency-code", methods=["GET", "POST"])
def emergency_code() -> Any:
    try:
        flow = _load(Step.RECOVERY)
        user = _user(flow)
    except FlowError:
        return restart_page()
    box = services().secret_box
    if flow.recovery_code is None:
        flow.recovery_code = box.encrypt(recovery.generate_code())
        services().flows.save(flow)
    code = box.decrypt(flow.recovery_code)
    if request.method == "GET":
        return _render("recovery", flow, code=code)
    if request.form.get("saved") != "yes":
        return _render(
            "recovery",
            flow,
            400,
            code=code,
            error=_("Tick the box to confirm that you have saved the code."),
        )
    services().factors.save_recovery_code(get_session(), user.id, code)
    flow.recovery_code = None
    _audit("factor.added", user, method="emergency_code")
    if "otp" in flow.amr:
        notify("mfa_enabled", user)  # a passkey account had its own e-mail
    return _go(flow, Step.FINISHED, "activation.finished")


@bp.route("/finished", methods=["GET", "POST"])
def finished() -> Any:
    """ "Totrinsbekræftelse aktiveret"; Næste goes on to the client, logged in."""
    try:
        flow = _load(Step.FINISHED)
        user = _user(flow)
    except FlowError:
        return restart_page()
    enrolled = "otp" in flow.amr or "mfa" in flow.amr
    with_passkey = bool({"hwk", "swk"} & set(flow.amr))
    if request.method == "GET":
        return _render("finished", flow, enrolled=enrolled, with_passkey=with_passkey)
    amr = flow.amr if "mfa" in flow.amr else [*flow.amr, "mfa"]
    if flow.kind == Kind.LOGIN:
        from idp.views.login import complete

        return complete(flow, user, amr)

    cookie = None
    if enrolled:
        # The user proved the e-mail link, and the new password and app, or the passkey.
        cookie, sso = services().sessions.create(
            user.id,
            amr=amr,
            acr=ACR_TWO_FACTORS,
            auth_time=clock.now(),
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
        )
        g.sso = sso
    if flow.params:
        response = make_response(continue_flow(flow))
    else:
        services().flows.finish(flow)
        client = services().clients.get(flow.client_hint or services().settings.default_client_id)
        target = client.initiate_login_uri if client and client.initiate_login_uri else "/"
        response = make_response(redirect(target))
    return set_sso_cookie(response, cookie) if cookie else response
