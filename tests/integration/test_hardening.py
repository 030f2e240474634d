"""Abuse and edge cases: oversized or malformed requests, redirects, brute
force, proxies, replays, an unreachable Redis."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
import redis
from click.testing import CliRunner

from idp import cli
from idp.oidc import views as oidc_views
from idp.store import Store
from tests.factories import Factory
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import exchange
from tests.flows import form_action
from tests.flows import is_login_screen
from tests.flows import login_for_code
from tests.flows import query
from tests.flows import submit_login


@pytest.fixture
def rp(factory):  # type: ignore[no-untyped-def]
    return factory.client("portal")


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    return factory.user()


def test_overlong_parameter_is_refused_without_parking_anything(client, store, rp):
    response = authorize(client, authorize_params("portal", Pkce.new(), state="x" * 5000))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.location is None
    assert list(store.redis.scan_iter(match=store.key("flow", "*"))) == []


def test_oversized_body_is_refused(client, rp):
    response = client.post("/authorize", data={"state": "x" * 70_000})
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


@pytest.mark.parametrize(
    ("parameter", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_request_objects_are_refused(client, rp, parameter, error):
    response = authorize(client, authorize_params("portal", Pkce.new(), **{parameter: "x"}))
    assert query(response.location)["error"] == error


def test_non_ascii_max_age_is_invalid_request_not_a_crash(client, rp, user):
    login_for_code(client, "portal", user.email, Pkce.new())
    response = authorize(client, authorize_params("portal", Pkce.new(), max_age="²"))
    assert query(response.location)["error"] == "invalid_request"


def test_redirect_uri_with_a_quote_gets_an_error_page(client, rp):
    response = authorize(client, authorize_params("portal", Pkce.new(), redirect_uri='http://x/"'))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.location is None


def test_login_flows_per_ip_are_limited(client, rp, monkeypatch):
    monkeypatch.setattr(oidc_views, "FLOWS_PER_IP", 2)
    for _ in range(2):
        started = authorize(client, authorize_params("portal", Pkce.new()))
        assert is_login_screen(started)
        assert form_action(started).startswith("/login?flow=")
    limited = authorize(client, authorize_params("portal", Pkce.new()))
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(limited.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/login?flow=abc", "/login?flow=abc"),
        ("//evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_language_switch_never_redirects_off_site(client, target, expected):
    response = client.get("/language/en", query_string={"next": target})
    assert response.status_code == HTTPStatus.FOUND
    assert response.location == expected


class TestPasswordGuessing:
    def _attempt(self, client, email, password):  # type: ignore[no-untyped-def]
        response = authorize(client, authorize_params("portal", Pkce.new(), prompt="login"))
        assert is_login_screen(response)
        return submit_login(client, response, email, password)

    def test_account_is_locked_after_five_failures_even_for_the_right_password(
        self, client, rp, user
    ):
        for _ in range(5):
            assert (
                self._attempt(client, user.email, "Wrong-1!").status_code == HTTPStatus.BAD_REQUEST
            )
        locked = self._attempt(client, user.email, "Correct-Horse-9")
        assert locked.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert "For mange forsøg. Prøv igen om 5 minutter." in locked.get_data(as_text=True)

    def test_unknown_address_is_locked_the_same_way(self, client, rp):
        for _ in range(5):
            self._attempt(client, "nobody@example.com", "Wrong-1!")
        locked = self._attempt(client, "nobody@example.com", "Wrong-1!")
        assert locked.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert "For mange forsøg. Prøv igen om 5 minutter." in locked.get_data(as_text=True)

    def test_lock_ends_after_the_wait_and_the_next_lock_is_longer(
        self, client, rp, user, monkeypatch
    ):
        from idp import clock

        start = clock.now()
        for _ in range(5):
            self._attempt(client, user.email, "Wrong-1!")
        monkeypatch.setattr(clock, "now", lambda: start + 5 * 60 + 1)
        assert self._attempt(client, user.email, "Correct-Horse-9").status_code == HTTPStatus.FOUND
        # Five more failures the same day: the lock doubles to ten minutes.
        for _ in range(5):
            self._attempt(client, user.email, "Wrong-1!")
        locked = self._attempt(client, user.email, "Correct-Horse-9")
        assert "For mange forsøg. Prøv igen om 10 minutter." in locked.get_data(as_text=True)
        monkeypatch.setattr(clock, "now", lambda: start + 5 * 60 + 1 + 10 * 60 + 1)
        assert self._attempt(client, user.email, "Correct-Horse-9").status_code == HTTPStatus.FOUND


def test_consent_of_a_user_who_is_no_longer_logged_in_is_not_recorded(client, factory):
    from idp.models import Consent

    factory.client("partner", is_first_party=False)
    first = factory.user()
    second = factory.user()
    response = authorize(client, authorize_params("partner", Pkce.new()))
    consent_url = submit_login(client, response, first.email).location
    assert consent_url.startswith("/consent?flow=")
    page = client.get(consent_url)
    # Someone else logs in on the same browser, then the stale page is submitted.
    other = authorize(client, authorize_params("partner", Pkce.new(), prompt="login"))
    assert submit_login(client, other, second.email).location.startswith("/consent?flow=")
    stale = client.post(consent_url, data={"decision": "allow", "csrf_token": csrf_token(page)})
    assert stale.status_code == HTTPStatus.BAD_REQUEST
    with client.application.app_context():
        from idp.db import get_session

        assert get_session().query(Consent).filter_by(user_id=first.id).count() == 0


def test_prompt_consent_is_honoured_for_a_first_party_client(client, rp, user):
    login_for_code(client, "portal", user.email, Pkce.new())
    response = authorize(client, authorize_params("portal", Pkce.new(), prompt="consent"))
    assert response.location.startswith("/consent?flow=")


def test_code_replayed_before_its_grant_was_written_still_revokes_it(app, client, rp, user):
    from idp.db import get_session
    from idp.models import Grant

    _, secret = rp
    pkce = Pkce.new()
    code = login_for_code(client, "portal", user.email, pkce)["code"]
    tokens = app.extensions["idp"].tokens
    data, grant_id = tokens.consume_code(code)  # the first exchange, mid-way
    with app.app_context():
        replay = exchange(client, "portal", secret, code, pkce)
        assert replay.json["error"] == "invalid_grant"
        tokens.create_grant(get_session(), grant_id, data, user.subject)  # the first goes on
        assert get_session().get(Grant, grant_id).revoked_at is not None


def test_a_user_revoked_while_a_code_is_exchanged_keeps_no_grant(app, client, rp, user):
    """The revocation comes after the exchange took the code and before its
    grant's commit, so its UPDATE cannot see the grant: the exchange asks
    after its commit, and the revocation set its entries before its UPDATE."""
    from sqlalchemy import event

    from idp.db import get_session
    from idp.models import Grant
    from idp.services.audit import Origin

    code = login_for_code(client, "portal", user.email, Pkce.new())["code"]
    services = app.extensions["idp"]
    data, grant_id = services.tokens.consume_code(code)  # the exchange, mid-way
    cutoff = services.store.key("deny", "sub", user.subject)
    set_before_the_update = []

    def watch(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE grants"):
            set_before_the_update.append(bool(services.store.call("EXISTS", cutoff)))

    engine = app.extensions["idp.engine"]
    event.listen(engine, "before_cursor_execute", watch)
    try:
        with app.app_context():
            services.logout.end_user(get_session(), user.id, Origin())
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert set_before_the_update == [True]
    with app.app_context():
        assert services.tokens.create_grant(get_session(), grant_id, data, user.subject) is False
        assert get_session().get(Grant, grant_id).revoked_at is not None


def test_a_consumed_code_names_its_grant_and_an_unknown_one_leaves_no_mark(app, client, rp, user):
    tokens = app.extensions["idp"].tokens
    code = login_for_code(client, "portal", user.email, Pkce.new())["code"]
    data, grant_id = tokens.consume_code(code)
    assert data is not None
    assert grant_id
    assert tokens.consume_code(code) == (None, grant_id)  # a replay names the grant
    assert tokens.consume_code("no-such-code") == (None, None)
    assert tokens.consume_code("no-such-code") == (None, None)  # no mark was left


def test_behind_a_tls_proxy_the_token_endpoint_works(settings, make_app):
    app = make_app(settings.replace(issuer="https://login.example.com", trusted_proxies=1))
    client = app.test_client()
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "login.example.com"},
    )
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json["error"] == "invalid_client"


def test_secure_cookies_carry_the_host_prefix(settings, make_app, user):
    app = make_app(settings.replace(cookie_secure=True))
    Factory(app).client("secure-rp")
    client = app.test_client()
    response = authorize(client, authorize_params("secure-rp", Pkce.new()))
    assert is_login_screen(response)
    assert "__Host-idp_browser=" in response.headers["Set-Cookie"]
    answer = submit_login(client, response, user.email)
    assert "__Host-idp_session=" in answer.headers["Set-Cookie"]
    assert "Secure" in answer.headers["Set-Cookie"]


def test_unreachable_redis_fails_closed_with_a_clear_page(settings, make_app):
    down = Store(redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2), "down:")
    app = make_app(settings, store=down)
    response = app.test_client().get("/dev/outbox")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "midlertidigt utilgængelig" in response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "30"


def test_idp_config_hides_secrets(monkeypatch):
    monkeypatch.setenv("IDP_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("IDP_DATABASE_URL", "postgresql://idp:hunter2@db/idp")
    monkeypatch.setenv("IDP_SMS_TOKEN", "sms-token-value")
    output = CliRunner().invoke(cli.main, ["config"]).output
    assert "hunter2" not in output
    assert "sms-token-value" not in output
    assert "s" * 40 not in output
    assert "IDP_DATABASE_URL=postgresql://idp:***@db/idp" in output


def test_pages_allow_no_inline_style_and_get_their_stylesheet(client, rp):
    """The look comes from the IdP's own stylesheets, so the policy allows no
    inline style (an injected ``style`` attribute or element does nothing)."""
    from pathlib import Path

    page = authorize(client, authorize_params("portal", Pkce.new()))
    policy = page.headers["Content-Security-Policy"]
    assert "style-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert re.search(r'<link rel="stylesheet" href="/static/idp.css\?v=[0-9a-f]{12}">', page.text)
    for name in ("idp.css", "admin.css"):
        sheet = client.get(f"/static/{name}")
        assert sheet.status_code == HTTPStatus.OK
        assert sheet.mimetype == "text/css"
    templates = Path(__file__).parents[2] / "templates"
    for template in templates.rglob("*.html"):
        if "email" in template.relative_to(templates).parts:
            continue  # e-mails: not pages, and mail clients want inline styles
        text = template.read_text()
        assert "<style" not in text, template
        assert "style=" not in text, template


def test_scripts_and_stylesheets_are_cached_by_their_versioned_address(app, client, rp):
    """Pages name each static file with a digest of its content; asked for by
    that address it may be kept a year, by any other it is asked for again."""
    import hashlib
    from pathlib import Path

    page = authorize(client, authorize_params("portal", Pkce.new()))
    script = re.search(r'<script src="(/static/idp\.js\?v=([0-9a-f]{12}))"', page.text)
    assert script is not None
    content = (Path(app.static_folder) / "idp.js").read_bytes()
    assert script.group(2) == hashlib.sha256(content).hexdigest()[:12]
    versioned = client.get(script.group(1))
    assert versioned.status_code == HTTPStatus.OK
    assert versioned.cache_control.max_age == 365 * 24 * 3600
    for other in ("/static/idp.js", "/static/idp.js?v=000000000000"):
        answer = client.get(other)
        assert answer.status_code == HTTPStatus.OK
        assert answer.cache_control.max_age is None, other
    assert client.get("/static/missing.js?v=").status_code == HTTPStatus.NOT_FOUND
    # Names that are no file are not remembered: requests cannot grow the table.
    known = dict(app.static_versions)
    for n in range(3):
        assert client.get(f"/static/nothing-{n}.js?v=x").status_code == HTTPStatus.NOT_FOUND
    assert app.static_versions == known
