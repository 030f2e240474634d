from __future__ import annotations

import json

import fakeredis
import pytest

from idp.services.mail import EmailMessage
from idp.services.mail import OutboxMailer
from idp.services.mail import SmtpMailer
from idp.services.mail import SmtpServer
from idp.services.mail import build_mailer
from idp.services.mail import parse_smtp_url
from idp.services.outbox import OUTBOX_SIZE
from idp.store import Store


def make_message(n: int = 0, text: str = "Hello") -> EmailMessage:
    return EmailMessage(
        to=f"user{n}@example.com",
        sender="Login <noreply@example.com>",
        subject=f"Message {n}",
        text=text,
        html=f"<p>{text}</p>",
        created_at=1_700_000_000 + n,
    )


@pytest.fixture
def outbox_store() -> Store:
    return Store(fakeredis.FakeRedis(), "test:")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25, "plain")),
        ("smtp://mail.example.com:2525", SmtpServer("mail.example.com", 2525, "plain")),
        ("smtp+starttls://mail.example.com", SmtpServer("mail.example.com", 587, "starttls")),
        ("smtps://mail.example.com", SmtpServer("mail.example.com", 465, "tls")),
        ("smtps://mail.example.com:4650", SmtpServer("mail.example.com", 4650, "tls")),
        ("SMTP://Mail.Example.com", SmtpServer("mail.example.com", 25, "plain")),
        ("smtp://[::1]:1025", SmtpServer("::1", 1025, "plain")),
    ],
)
def test_smtp_url_gives_host_port_and_security(url: str, expected: SmtpServer):
    assert parse_smtp_url(url) == expected


def test_smtp_url_credentials_are_percent_decoded():
    server = parse_smtp_url("smtp+starttls://idp%40example.com:p%3Ass%2Fw%25rd@mail.example.com")
    assert server == SmtpServer(
        host="mail.example.com",
        port=587,
        security="starttls",
        username="idp@example.com",
        password="p:ss/w%rd",
    )


def test_smtp_password_is_not_in_repr():
    server = parse_smtp_url("smtps://user:hunter2@mail.example.com")
    assert "hunter2" not in repr(server)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://mail.example.com",
            "unsupported SMTP URL scheme 'http': use smtp://, smtp+starttls:// or smtps://",
        ),
        (
            "mail.example.com:25",
            "unsupported SMTP URL scheme 'mail.example.com': use smtp://, smtp+starttls:// or smtps://",
        ),
        ("smtp://", "the SMTP URL has no host"),
        ("smtp://user:secret@mail.example.com:abc", "the SMTP URL's port must be a number"),
        ("smtp://mail.example.com:70000", "the SMTP URL's port must be a number"),
    ],
)
def test_malformed_smtp_url_is_rejected_without_echoing_it(url: str, message: str):
    with pytest.raises(ValueError, match="^" + message.replace("+", r"\+")) as info:
        parse_smtp_url(url)
    assert "secret" not in str(info.value)


def test_smtp_mailer_parses_its_url():
    mailer = SmtpMailer("smtps://u:p@mail.example.com", timeout_seconds=3)
    assert mailer.server == SmtpServer("mail.example.com", 465, "tls", "u", "p")
    assert mailer.timeout_seconds == 3
    assert mailer.ssl_context is not None


def test_links_are_the_http_urls_of_the_text_body():
    message = make_message(
        text=(
            "Activate your account: https://id.example.com/activate/abc_-123?x=1&y=2.\n"
            "Or visit (http://localhost:5000/help), not ftp://example.com or <https://a.example/b>."
        )
    )
    assert message.links() == [
        "https://id.example.com/activate/abc_-123?x=1&y=2",
        "http://localhost:5000/help",
        "https://a.example/b",
    ]


def test_links_ignore_the_html_body():
    message = EmailMessage(
        to="a@example.com", sender="b@example.com", subject="s", text="none", html="https://x.y/"
    )
    assert message.links() == []


def test_created_at_defaults_to_the_clock(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("idp.clock.now", lambda: 1234)
    message = EmailMessage(
        to="a@example.com", sender="b@example.com", subject="s", text="t", html=""
    )
    assert message.created_at == 1234


def test_outbox_returns_messages_newest_first(outbox_store: Store):
    outbox = OutboxMailer(outbox_store, echo=None)
    sent = [make_message(n) for n in range(3)]
    for message in sent:
        outbox.send(message)
    assert outbox.messages() == sent[::-1]
    assert outbox.messages(limit=2) == [sent[2], sent[1]]
    assert outbox.messages(limit=0) == []


def test_outbox_stores_json_under_the_prefixed_key(outbox_store: Store):
    OutboxMailer(outbox_store, echo=None).send(make_message(7))
    raw = outbox_store.redis.lrange("test:outbox:mail", 0, -1)
    assert [json.loads(item)["to"] for item in raw] == ["user7@example.com"]


def test_outbox_keeps_only_the_newest_messages(outbox_store: Store):
    outbox = OutboxMailer(outbox_store, echo=None)
    for n in range(OUTBOX_SIZE + 5):
        outbox.send(make_message(n))
    assert outbox_store.redis.llen("test:outbox:mail") == OUTBOX_SIZE == 200
    kept = outbox.messages(limit=OUTBOX_SIZE + 10)
    assert len(kept) == OUTBOX_SIZE
    assert kept[0].subject == f"Message {OUTBOX_SIZE + 4}"
    assert kept[-1].subject == "Message 5"


def test_outbox_clear_empties_it(outbox_store: Store):
    outbox = OutboxMailer(outbox_store, echo=None)
    outbox.send(make_message())
    outbox.clear()
    assert outbox.messages() == []


def test_outbox_echoes_recipient_subject_and_links(outbox_store: Store):
    echoed: list[str] = []
    outbox = OutboxMailer(outbox_store, echo=echoed.append)
    outbox.send(
        make_message(
            1, text="Click https://id.example.com/activate/t0k3n to activate.\nSecret body text."
        )
    )
    assert echoed == [
        "[outbox] mail to user1@example.com: Message 1\n    https://id.example.com/activate/t0k3n"
    ]


def test_outbox_echoes_to_the_console_by_default(
    outbox_store: Store, capsys: pytest.CaptureFixture[str]
):
    OutboxMailer(outbox_store).send(make_message(2, text="Go to http://localhost:5000/a/b"))
    assert capsys.readouterr().out == (
        "[outbox] mail to user2@example.com: Message 2\n    http://localhost:5000/a/b\n"
    )


def test_build_mailer_uses_smtp_when_a_url_is_set(outbox_store: Store):
    mailer = build_mailer("smtp://127.0.0.1:2525", outbox_store)
    assert isinstance(mailer, SmtpMailer)
    assert mailer.server == SmtpServer("127.0.0.1", 2525, "plain")


def test_build_mailer_uses_the_outbox_without_a_url(outbox_store: Store):
    mailer = build_mailer("", outbox_store, echo=None)
    assert isinstance(mailer, OutboxMailer)
    assert mailer.outbox.store is outbox_store
    assert mailer.echo is None


def test_build_mailer_rejects_a_malformed_url(outbox_store: Store):
    with pytest.raises(ValueError, match="unsupported SMTP URL scheme 'redis'"):
        build_mailer("redis://localhost", outbox_store)
