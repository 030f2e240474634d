"""SmtpMailer against a real SMTP server (aiosmtpd) on loopback.

The TLS tests use a throwaway certificate for 127.0.0.1, trusted through the
mailer's ``ssl_context``; AUTH is tested only over TLS, as a real server would
require.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from idp.services.mail import EmailMessage
from idp.services.mail import MailDeliveryError
from idp.services.mail import SmtpMailer

HOST = "127.0.0.1"
USERNAME = "idp@example.com"
PASSWORD = "p:ss/w%rd"
#: The same credentials, percent-encoded for the URL.
CREDENTIALS = "idp%40example.com:p%3Ass%2Fw%25rd"

ACTIVATION_LINK = "https://id.example.com/activate/abc123"


@dataclass
class Collector:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def received(self) -> MimeMessage:
        """The one message received, parsed."""
        assert len(self.envelopes) == 1
        content = self.envelopes[0].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, MimeMessage)
        return parsed


def authenticate(
    server: Any, session: Any, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    is_valid = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False: aiosmtpd then answers a failure with 535 itself.
    return AuthResult(success=is_valid, handled=False)


def free_port() -> int:
    """A loopback port nobody listens on (aiosmtpd cannot bind to port 0)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    directory = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(tz=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """Verifies the server like the default context does, trusting our certificate."""
    return ssl.create_default_context(cafile=str(certificate[0]))


@dataclass
class SmtpServer:
    handler: Collector
    port: int


def run_server(**kwargs: Any) -> Iterator[SmtpServer]:
    handler = Collector()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(handler, port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Plain SMTP, no STARTTLS, no AUTH."""
    yield from run_server()


@pytest.fixture
def starttls_server(server_tls: ssl.SSLContext) -> Iterator[SmtpServer]:
    """Requires STARTTLS before anything else, then AUTH before MAIL."""
    yield from run_server(
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )


@pytest.fixture
def smtps_server(server_tls: ssl.SSLContext) -> Iterator[SmtpServer]:
    """Implicit TLS, then AUTH before MAIL."""
    yield from run_server(
        ssl_context=server_tls,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )


def make_message() -> EmailMessage:
    return EmailMessage(
        to="alice@example.com",
        sender="Login <noreply@id.example.com>",
        subject="Aktivér din konto",
        text=f"Hej Alice,\n\nAktivér din konto her: {ACTIVATION_LINK}\n",
        html=f'<p>Hej Alice,</p><p><a href="{ACTIVATION_LINK}">Aktivér din konto</a></p>',
        created_at=1_700_000_000,
    )


def assert_is_the_message(received: MimeMessage) -> None:
    assert received["From"] == "Login <noreply@id.example.com>"
    assert received["To"] == "alice@example.com"
    assert received["Subject"] == "Aktivér din konto"
    assert received["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert received["Message-ID"].endswith("@id.example.com>")
    assert received.get_content_type() == "multipart/alternative"
    parts = list(received.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    text = parts[0].get_content()
    assert ACTIVATION_LINK in text.split()
    assert f'href="{ACTIVATION_LINK}"' in parts[1].get_content()


def test_message_is_delivered_over_plain_smtp(smtp_server: SmtpServer):
    SmtpMailer(f"smtp://{HOST}:{smtp_server.port}").send(make_message())

    envelope = smtp_server.handler.envelopes[0]
    assert envelope.mail_from == "noreply@id.example.com"
    assert envelope.rcpt_tos == ["alice@example.com"]
    assert_is_the_message(smtp_server.handler.received())


def test_message_is_delivered_after_starttls_and_login(
    starttls_server: SmtpServer, client_tls: ssl.SSLContext
):
    url = f"smtp+starttls://{CREDENTIALS}@{HOST}:{starttls_server.port}"
    SmtpMailer(url, ssl_context=client_tls).send(make_message())

    assert_is_the_message(starttls_server.handler.received())


# aiosmtpd counts only STARTTLS as TLS, so it warns about requiring AUTH on the
# smtps_server; that connection is encrypted from its first byte.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_message_is_delivered_over_implicit_tls_with_login(
    smtps_server: SmtpServer, client_tls: ssl.SSLContext
):
    url = f"smtps://{CREDENTIALS}@{HOST}:{smtps_server.port}"
    SmtpMailer(url, ssl_context=client_tls).send(make_message())

    assert_is_the_message(smtps_server.handler.received())


def test_wrong_password_is_a_delivery_error(
    starttls_server: SmtpServer, client_tls: ssl.SSLContext
):
    url = f"smtp+starttls://idp%40example.com:wrong@{HOST}:{starttls_server.port}"
    with pytest.raises(MailDeliveryError) as info:
        SmtpMailer(url, ssl_context=client_tls).send(make_message())
    cause = info.value.__cause__
    assert isinstance(cause, smtplib.SMTPAuthenticationError)
    assert cause.smtp_code == 535
    assert starttls_server.handler.envelopes == []


def test_untrusted_certificate_is_a_delivery_error(starttls_server: SmtpServer):
    url = f"smtp+starttls://{CREDENTIALS}@{HOST}:{starttls_server.port}"
    with pytest.raises(MailDeliveryError) as info:
        SmtpMailer(url).send(make_message())
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert starttls_server.handler.envelopes == []


def test_starttls_never_falls_back_to_plain_text(
    smtp_server: SmtpServer, client_tls: ssl.SSLContext
):
    url = f"smtp+starttls://{CREDENTIALS}@{HOST}:{smtp_server.port}"
    with pytest.raises(MailDeliveryError) as info:
        SmtpMailer(url, ssl_context=client_tls).send(make_message())
    assert isinstance(info.value.__cause__, smtplib.SMTPNotSupportedError)
    assert smtp_server.handler.envelopes == []


def test_server_that_is_down_is_a_delivery_error():
    port = free_port()
    with pytest.raises(MailDeliveryError) as info:
        SmtpMailer(f"smtp://{HOST}:{port}", timeout_seconds=2).send(make_message())
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert str(info.value).startswith(f"could not send mail via {HOST}:{port}: ")
