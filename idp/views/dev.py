"""Development only: the outbox of e-mail and SMS, so every journey can be
clicked through without a mail server or an SMS provider."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import render_template

from idp.context import services
from idp.services.mail import OutboxMailer
from idp.services.sms import OutboxSmsSender

__all__ = ["bp"]

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.get("/outbox")
def outbox() -> Any:
    mailer = services().mailer
    sender = services().sms_sender
    mails = mailer.messages() if isinstance(mailer, OutboxMailer) else []
    texts = sender.messages() if isinstance(sender, OutboxSmsSender) else []
    return render_template("dev/outbox.html", mails=mails, texts=texts)
