"""HttpSmsSender against a real HTTP server on loopback, standing in for the provider."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from idp.services.sms import HttpSmsSender
from idp.services.sms import SmsDeliveryError

TOKEN = "provider-token"
PHONE = "+4520123160"
TEXT = "Din kode er 123456\nReference 0042"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Provider:
    """What the fake provider received, and how it answers the next requests."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    #: Statuses of the next answers, in order; then 200.
    statuses: list[int] = field(default_factory=list)
    #: Seconds to wait before answering the next requests, in order.
    delays: list[float] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _ProviderServer

    def do_POST(self) -> None:
        provider = self.server.provider
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        provider.requests.append(Recorded(self.path, dict(self.headers), body))
        if provider.delays:
            time.sleep(provider.delays.pop(0))
        status = provider.statuses.pop(0) if provider.statuses else HTTPStatus.OK
        payload = json.dumps({"status": int(status)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class _ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    provider: Provider

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client that timed out has hung up before the answer."""


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = _ProviderServer(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.provider = Provider(url=f"http://{host!s}:{port}/v1/messages")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server.provider
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sender(provider: Provider) -> Iterator[HttpSmsSender]:
    sender = HttpSmsSender(provider.url, TOKEN, timeout_seconds=1, backoff_seconds=0.01)
    sender.session.trust_env = False  # no proxy between us and loopback
    yield sender
    sender.close()


def test_message_is_posted_as_json_with_the_bearer_token(
    provider: Provider, sender: HttpSmsSender
) -> None:
    sender.send(PHONE, TEXT)

    (request,) = provider.requests
    assert request.path == "/v1/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {"to": PHONE, "text": TEXT}


def test_server_errors_are_retried_until_success(provider: Provider, sender: HttpSmsSender) -> None:
    provider.statuses = [HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.BAD_GATEWAY]

    sender.send(PHONE, TEXT)

    assert [r.body for r in provider.requests] == [{"to": PHONE, "text": TEXT}] * 3


def test_gives_up_after_the_retries(provider: Provider, sender: HttpSmsSender) -> None:
    provider.statuses = [HTTPStatus.INTERNAL_SERVER_ERROR] * 3

    with pytest.raises(SmsDeliveryError) as raised:
        sender.send(PHONE, TEXT)

    assert len(provider.requests) == 3
    assert str(raised.value) == "the SMS provider failed 3 times, last: HTTP 500"


def test_client_error_is_not_retried(provider: Provider, sender: HttpSmsSender) -> None:
    provider.statuses = [HTTPStatus.BAD_REQUEST]

    with pytest.raises(SmsDeliveryError) as raised:
        sender.send(PHONE, TEXT)

    assert len(provider.requests) == 1
    assert str(raised.value) == "the SMS provider refused the message: HTTP 400"


def test_timeouts_are_retried(provider: Provider) -> None:
    provider.delays = [0.3]
    sender = HttpSmsSender(provider.url, TOKEN, timeout_seconds=0.1, backoff_seconds=0.01)
    sender.session.trust_env = False
    try:
        sender.send(PHONE, TEXT)
    finally:
        sender.close()

    assert len(provider.requests) == 2


def test_unreachable_provider_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more: every connection is refused.
    sender = HttpSmsSender(
        f"http://127.0.0.1:{port}/v1/messages", TOKEN, timeout_seconds=1, backoff_seconds=0.01
    )
    sender.session.trust_env = False
    try:
        with pytest.raises(SmsDeliveryError) as raised:
            sender.send(PHONE, TEXT)
    finally:
        sender.close()

    assert str(raised.value) == "the SMS provider failed 3 times, last: ConnectionError"


def test_text_is_never_logged(
    provider: Provider, sender: HttpSmsSender, caplog: pytest.LogCaptureFixture
) -> None:
    provider.statuses = [HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.BAD_REQUEST]
    caplog.set_level("DEBUG")

    with pytest.raises(SmsDeliveryError):
        sender.send(PHONE, TEXT)
    sender.send(PHONE, TEXT)

    assert caplog.records
    assert [
        r for r in caplog.records if "123456" in r.getMessage() or PHONE in r.getMessage()
    ] == []
