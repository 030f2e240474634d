"""Outgoing e-mail: the :class:`Mailer` protocol and its two implementations.

:class:`SmtpMailer` hands messages to an SMTP server named by a URL
(``IDP_SMTP_URL``). :class:`OutboxMailer` is the development outbox: it keeps
the newest messages in Redis and prints their links to the console, so that a
local setup needs no mail server and tests read activation links the way a user
would. :func:`build_mailer` is the one place that chooses between them.

Message bodies carry single-use links and codes, so nothing here logs them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime
from email.utils import make_msgid
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import unquote
from urllib.parse import urlsplit

from idp import clock
from idp.services.outbox import Outbox
from idp.store import Store

__all__ = [
    "EmailMessage",
    "MailDeliveryError",
    "Mailer",
    "OutboxMailer",
    "SmtpMailer",
    "SmtpServer",
    "build_mailer",
    "parse_smtp_url",
]

log = logging.getLogger(__name__)

#: The outbox keeps this many messages, dropping the oldest.

#: URL scheme: (security, default port). ``starttls`` upgrades a plain
#: connection (RFC 3207); ``tls`` is implicit TLS from the first byte (RFC 8314).
SMTP_SCHEMES = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}

_LINK = re.compile(r"https?://[^\s<>\"']+")
#: Sentence punctuation that follows a link in prose but is not part of it.
_LINK_TRAILER = ".,;:!?)]}"


@dataclass(frozen=True)
class EmailMessage:
    """One e-mail, already rendered: a plain-text and an HTML body."""

    to: str
    sender: str
    subject: str
    text: str
    html: str
    #: Seconds since the epoch; becomes the ``Date`` header. Looked up at call
    #: time, so that tests moving :func:`idp.clock.now` move this too.
    created_at: int = field(default_factory=lambda: clock.now())

    def links(self) -> list[str]:
        """The ``http`` and ``https`` URLs in the plain-text body, in order."""
        return [match.rstrip(_LINK_TRAILER) for match in _LINK.findall(self.text)]


class MailDeliveryError(Exception):
    """The message could not be handed to the mail server."""


class Mailer(Protocol):
    """Sends e-mail. Implementations: :class:`SmtpMailer`, :class:`OutboxMailer`."""

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise :class:`MailDeliveryError`."""
        ...


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to connect, parsed from an SMTP URL by :func:`parse_smtp_url`."""

    host: str
    port: int
    #: ``plain``, ``starttls`` or ``tls`` (see :data:`SMTP_SCHEMES`).
    security: str
    username: str = ""
    password: str = field(default="", repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """Parse ``smtp://``, ``smtp+starttls://`` or ``smtps://[user:pass@]host[:port]``.

    The user name and password are percent-decoded, so ``%40`` stands for ``@``
    and ``%3A`` for ``:``.

    :raises ValueError: the scheme, host or port is missing or unsupported. The
        message never repeats the URL, which may hold a password.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SMTP_SCHEMES:
        raise ValueError(
            f"unsupported SMTP URL scheme {scheme!r}: use smtp://, smtp+starttls:// or smtps://"
        )
    security, default_port = SMTP_SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError("the SMTP URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the SMTP URL's port must be a number from 1 to 65535") from None
    return SmtpServer(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def _to_mime(message: EmailMessage) -> MimeMessage:
    """A ``multipart/alternative`` message (text, then HTML) with ``Date`` and
    ``Message-ID`` headers.

    :raises ValueError: a header value contains a line break.
    """
    mime = MimeMessage()
    mime["From"] = message.sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(dt.datetime.fromtimestamp(message.created_at, tz=dt.UTC))
    # The sender's domain rather than the default, which asks DNS for this
    # host's fully qualified name on every message.
    domain = parseaddr(message.sender)[1].rpartition("@")[2] or "localhost"
    mime["Message-ID"] = make_msgid(domain=domain)
    mime.set_content(message.text)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    return mime


class SmtpMailer:
    """Sends each message over a new connection to the SMTP server of ``url``.

    ``smtp://`` sends credentials unencrypted, so use it only for a relay on a
    trusted network; ``smtp+starttls://`` and ``smtps://`` verify the server's
    certificate against the system's CAs (or ``ssl_context``).

    :param url: see :func:`parse_smtp_url`.
    :param timeout_seconds: for connecting and for each command.
    :param ssl_context: overrides the default, certificate-verifying context.
    """

    def __init__(
        self,
        url: str,
        timeout_seconds: float = 10,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = parse_smtp_url(url)
        self.timeout_seconds = timeout_seconds
        self.ssl_context = ssl_context
        if ssl_context is None and self.server.security != "plain":
            self.ssl_context = ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        server = self.server
        if server.security == "tls":
            return smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout_seconds, context=self.ssl_context
            )
        return smtplib.SMTP(server.host, server.port, timeout=self.timeout_seconds)

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``.

        :raises MailDeliveryError: the server is unreachable, refused the
            login, the sender or the recipient, or the TLS handshake failed.
        :raises ValueError: a header value contains a line break.
        """
        mime = _to_mime(message)
        server = self.server
        try:
            with self._connect() as smtp:
                if server.security == "starttls":
                    # Never falls back to plain text: a server without
                    # STARTTLS raises SMTPNotSupportedError.
                    smtp.starttls(context=self.ssl_context)
                if server.username:
                    smtp.login(server.username, server.password)
                smtp.send_message(mime)
        except (smtplib.SMTPException, OSError) as e:
            # OSError covers refused connections, timeouts and ssl.SSLError.
            log.warning(
                "mail delivery via %s:%s failed: %s", server.host, server.port, type(e).__name__
            )
            raise MailDeliveryError(
                f"could not send mail via {server.host}:{server.port}: {e}"
            ) from e
        log.info("mail sent via %s:%s", server.host, server.port)


class OutboxMailer:
    """The development outbox: messages go to a Redis list, not to anyone.

    Each message is stored as JSON under ``outbox:mail``, newest first, and
    only the newest :data:`~idp.services.outbox.OUTBOX_SIZE` are kept. A short summary with the
    message's links goes to ``echo`` (the console by default), so whoever runs
    the server locally can follow an activation link.

    :param echo: receives the summary; ``None`` to stay quiet.
    """

    def __init__(self, store: Store, echo: Callable[[str], None] | None = print) -> None:
        self.outbox = Outbox(store, "mail", EmailMessage)
        self.echo = echo

    def send(self, message: EmailMessage) -> None:
        """Keep ``message`` in the outbox and echo its summary."""
        self.outbox.keep(message)
        if self.echo is not None:
            lines = [f"[outbox] mail to {message.to}: {message.subject}"]
            lines.extend(f"    {link}" for link in message.links())
            self.echo("\n".join(lines))

    def messages(self, limit: int = 50) -> list[EmailMessage]:
        """The newest ``limit`` messages, newest first."""
        return self.outbox.messages(limit)

    def clear(self) -> None:
        """Empty the outbox."""
        self.outbox.clear()


def build_mailer(smtp_url: str, store: Store, echo: Callable[[str], None] | None = print) -> Mailer:
    """The mailer of these settings: SMTP when ``smtp_url`` is set, otherwise
    the development outbox.

    :param smtp_url: the ``IDP_SMTP_URL`` setting; empty for the outbox.
    :param echo: where the outbox prints its summaries.
    :raises ValueError: ``smtp_url`` is malformed (see :func:`parse_smtp_url`).
    """
    if smtp_url:
        return SmtpMailer(smtp_url)
    return OutboxMailer(store, echo)
