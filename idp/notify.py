"""E-mails to users, rendered from ``templates/email/<name>/`` in the user's
language and sent through the configured :class:`~idp.services.mail.Mailer`."""

from __future__ import annotations

import logging
from typing import Any

from flask import render_template
from flask_babel import force_locale

from idp.context import services
from idp.models import User
from idp.services.mail import EmailMessage
from idp.services.mail import MailDeliveryError

__all__ = ["notify", "render_email", "send_email", "user_locale"]

log = logging.getLogger(__name__)

LOCALES = ("da", "en")


def user_locale(user: User) -> str:
    """The user's language if we speak it, else the default."""
    return user.locale if user.locale in LOCALES else services().settings.default_locale


def render_email(name: str, locale: str, **context: Any) -> tuple[str, str, str]:
    """Subject, plain text and HTML of e-mail ``name`` in ``locale``."""
    context.setdefault("brand_name", services().settings.brand_name)
    with force_locale(locale):
        subject = render_template(f"email/{name}/subject.txt", **context).strip()
        text = render_template(f"email/{name}/body.txt", **context)
        html = render_template(f"email/{name}/body.html", locale=locale, **context)
    return subject, text, html


def send_email(name: str, user: User, **context: Any) -> None:
    """Send e-mail ``name`` to ``user`` in their language."""
    subject, text, html = render_email(name, user_locale(user), user=user, **context)
    settings = services().settings
    services().mailer.send(
        EmailMessage(
            to=user.email, sender=settings.mail_from, subject=subject, text=text, html=html
        )
    )


def notify(name: str, user: User, **context: Any) -> None:
    """Send a security notification ("your password was changed"). The step
    that caused it has already happened, so a delivery failure is logged and
    does not undo or block it."""
    try:
        send_email(name, user, **context)
    except MailDeliveryError:
        log.exception("notification %s to user %s not delivered", name, user.id)
