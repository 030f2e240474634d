"""Administration (J5): the admin pages and the same actions from the command line."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from click.testing import CliRunner

from idp.cli import main as idp_main
from idp.db import get_session
from idp.models import User
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import exchange
from tests.flows import form_action
from tests.flows import form_post
from tests.flows import is_login_screen
from tests.flows import login_for_code
from tests.flows import query
from tests.flows import screen
from tests.flows import submit_login

ADMIN_PAGES = ["/admin/", "/admin/audit", "/admin/users/1"]


@pytest.fixture
def rp(factory):  # type: ignore[no-untyped-def]
    return factory.client("portal", initiate_login_uri="http://localhost:8000/login")


@pytest.fixture
def kim(factory):  # type: ignore[no-untyped-def]
    return factory.user("kim@example.com", organization="MS_Test_03")


@pytest.fixture
def admin_client(app, factory, rp):  # type: ignore[no-untyped-def]
    """A browser where an admin logged in with a password and the authenticator app."""
    admin = factory.user("admin@example.com", is_admin=True)
    enrolment = factory.enrol(admin)
    browser = app.test_client()
    response = browser.get("/admin/")
    assert response.location.startswith("/login?flow=")
    page = screen(browser, submit_login(browser, response.location, admin.email))
    assert form_action(page).startswith("/login/code?flow=")
    answer = form_post(browser, page, {"code": enrolment.totp_code()})
    assert answer.location == "/admin/"
    browser.admin = admin  # type: ignore[attr-defined]
    return browser


def confirm(browser, page, action: str, **data: str):  # type: ignore[no-untyped-def]
    return browser.post(action, data={"csrf_token": csrf_token(page), "confirm": "yes", **data})


def logged_in(browser) -> bool:  # type: ignore[no-untyped-def]
    response = authorize(browser, authorize_params("portal", Pkce.new(), prompt="none"))
    return "code" in query(response.location)


def events(app, name: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    with app.app_context():
        return app.extensions["idp"].audit.recent(get_session(), event=name)


class TestGuard:
    def test_without_a_session_the_admin_pages_ask_for_a_login(self, client):
        response = client.get("/admin/")
        assert response.location.startswith("/login?flow=")

    @pytest.mark.parametrize("path", ADMIN_PAGES)
    def test_non_admins_get_403(self, client, rp, kim, path):
        login_for_code(client, "portal", kim.email, Pkce.new())
        response = client.get(path)
        assert response.status_code == HTTPStatus.FORBIDDEN
        assert "Ingen adgang" in response.get_data(as_text=True)
        page = client.get("/account")
        assert (
            client.post(
                "/admin/users/1/revoke-all", data={"csrf_token": csrf_token(page), "confirm": "yes"}
            ).status_code
            == HTTPStatus.FORBIDDEN
        )

    def test_an_admin_with_only_a_password_gets_403(self, client, rp, factory):
        admin = factory.user("admin@example.com", is_admin=True)
        login_for_code(client, "portal", admin.email, Pkce.new())
        assert client.get("/admin/").status_code == HTTPStatus.FORBIDDEN


class TestUsersAndSessions:
    def test_search_and_see_a_users_sessions_and_products(self, app, admin_client, rp, kim):
        login_for_code(app.test_client(), "portal", kim.email, Pkce.new())
        found = admin_client.get("/admin/?q=ms_test").get_data(as_text=True)
        assert "kim@example.com" in found
        assert "admin@example.com" not in found
        page = admin_client.get(f"/admin/users/{kim.id}").get_data(as_text=True)
        assert 'id="user-email">kim@example.com<' in page
        assert "Test Portal (" in page  # the product and when it was reached
        assert "127.0.0.1" in page

    def test_revoking_one_session_leaves_the_other(self, app, admin_client, rp, kim):
        laptop, phone = app.test_client(), app.test_client()
        login_for_code(laptop, "portal", kim.email, Pkce.new())
        login_for_code(phone, "portal", kim.email, Pkce.new())
        page = admin_client.get(f"/admin/users/{kim.id}")
        sids = re.findall(r'data-session="([^"]+)"', page.get_data(as_text=True))
        assert len(sids) == 2
        with app.app_context():
            laptop_sid = next(
                s.id for s in app.extensions["idp"].sessions.for_user(kim.id) if s.id in sids
            )
        unconfirmed = admin_client.post(
            f"/admin/users/{kim.id}/sessions/{laptop_sid}/revoke",
            data={"csrf_token": csrf_token(page)},
        )
        assert unconfirmed.status_code == HTTPStatus.BAD_REQUEST
        done = confirm(admin_client, page, f"/admin/users/{kim.id}/sessions/{laptop_sid}/revoke")
        assert done.location == f"/admin/users/{kim.id}?done=revoked"
        assert logged_in(laptop) != logged_in(phone)  # exactly one of them is gone
        (event,) = events(app, "session.revoked")
        assert event.actor_id == admin_client.admin.id
        assert event.subject_id == kim.id

    def test_revoke_all_ends_tokens_everywhere(self, app, admin_client, rp, kim):
        browser = app.test_client()
        pkce = Pkce.new()
        code = login_for_code(browser, "portal", kim.email, pkce)["code"]
        tokens = exchange(browser, "portal", rp[1], code, pkce).get_json()
        page = admin_client.get(f"/admin/users/{kim.id}")
        confirm(admin_client, page, f"/admin/users/{kim.id}/revoke-all")
        assert not logged_in(browser)
        introspected = browser.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", rp[1])
        )
        assert introspected.get_json() == {"active": False}
        assert [e.actor_id for e in events(app, "admin.sessions_revoked")] == [
            admin_client.admin.id
        ]

    def test_disable_then_enable(self, app, admin_client, rp, kim):
        browser = app.test_client()
        login_for_code(browser, "portal", kim.email, Pkce.new())
        page = admin_client.get(f"/admin/users/{kim.id}")
        confirm(admin_client, page, f"/admin/users/{kim.id}/disable")
        assert not logged_in(browser)
        response = authorize(browser, authorize_params("portal", Pkce.new()))
        assert is_login_screen(response)
        refused = submit_login(browser, response, kim.email)
        assert refused.status_code == HTTPStatus.BAD_REQUEST
        page = admin_client.get(f"/admin/users/{kim.id}")
        assert "Deaktiveret" in page.get_data(as_text=True)
        confirm(admin_client, page, f"/admin/users/{kim.id}/enable")
        login_for_code(browser, "portal", kim.email, Pkce.new())
        assert {
            e.event for e in events(app, "admin.user_disabled") + events(app, "admin.user_enabled")
        } == {"admin.user_disabled", "admin.user_enabled"}

    def test_reset_factors_and_force_a_new_password(self, app, admin_client, rp, factory):
        user = factory.user("ann@example.com")
        factory.enrol(user)
        page = admin_client.get(f"/admin/users/{user.id}")
        confirm(admin_client, page, f"/admin/users/{user.id}/reset-factors")
        confirm(admin_client, page, f"/admin/users/{user.id}/force-password-reset")
        with app.app_context():
            row = get_session().get(User, user.id)
            assert app.extensions["idp"].factors.methods(get_session(), row) == []
            assert row.password_hash is None
        (mail,) = app.extensions["idp"].mailer.messages()
        assert mail.to == "ann@example.com"
        assert any("/reset/" in link for link in mail.links())

    def test_invite_from_the_admin_page(self, app, admin_client, rp):
        page = admin_client.get("/admin/")
        answer = admin_client.post(
            "/admin/invite",
            data={
                "csrf_token": csrf_token(page),
                "email": "new@example.com",
                "name": "Nina Ny",
                "organization": "MS_Test_03",
            },
        )
        assert answer.status_code == HTTPStatus.FOUND
        (mail,) = app.extensions["idp"].mailer.messages()
        assert mail.to == "new@example.com"
        bad = admin_client.post(
            "/admin/invite", data={"csrf_token": csrf_token(page), "email": "nope"}
        )
        assert bad.status_code == HTTPStatus.BAD_REQUEST

    def test_admins_cannot_lock_out_admins_here(self, admin_client, factory):
        other = factory.user("other.admin@example.com", is_admin=True)
        for target in (admin_client.admin, other):
            page = admin_client.get(f"/admin/users/{target.id}")
            for action in ("disable", "reset-factors", "force-password-reset"):
                response = confirm(admin_client, page, f"/admin/users/{target.id}/{action}")
                assert response.status_code == HTTPStatus.FORBIDDEN

    def test_audit_log_filters(self, app, admin_client, rp, kim):
        browser = app.test_client()
        response = authorize(browser, authorize_params("portal", Pkce.new()))
        assert is_login_screen(response)
        submit_login(browser, response, kim.email, "Wrong-password-1")
        page = admin_client.get("/admin/audit?event=login.*&user=kim@example.com").get_data(
            as_text=True
        )
        assert "login.failed" in page
        assert '{"reason": "password"}' in page
        assert "admin@example.com" not in page.split('id="audit"')[1].split("login.failed")[0]


class TestCommandLine:
    def _idp(self, app, monkeypatch, *args: str):  # type: ignore[no-untyped-def]
        monkeypatch.setattr("idp.cli.get_app", lambda: app)
        return CliRunner().invoke(idp_main, list(args))

    def test_sessions_list_and_revoke(self, app, monkeypatch, rp, kim):
        laptop, phone = app.test_client(), app.test_client()
        login_for_code(laptop, "portal", kim.email, Pkce.new())
        login_for_code(phone, "portal", kim.email, Pkce.new())
        listed = self._idp(app, monkeypatch, "sessions", "list", "--user", kim.email)
        assert listed.exit_code == 0, listed.output
        lines = listed.output.strip().splitlines()
        assert len(lines) == 2
        assert all("portal" in line and "127.0.0.1" in line for line in lines)
        one = self._idp(
            app, monkeypatch, "sessions", "revoke", "--session", lines[0].split("\t")[0]
        )
        assert one.output.strip() == "1 sessions revoked, 0 products told"
        assert logged_in(laptop) != logged_in(phone)
        rest = self._idp(app, monkeypatch, "sessions", "revoke", "--user", kim.email)
        assert rest.output.strip() == "1 sessions revoked, 0 products told"
        assert not logged_in(laptop)
        assert not logged_in(phone)
        both = self._idp(app, monkeypatch, "sessions", "revoke")
        assert both.exit_code != 0

    def test_user_actions(self, app, monkeypatch, rp, kim):
        assert self._idp(app, monkeypatch, "users", "disable", kim.email).exit_code == 0
        with app.app_context():
            assert not get_session().get(User, kim.id).is_active
        assert self._idp(app, monkeypatch, "users", "enable", kim.email).exit_code == 0
        missing = self._idp(app, monkeypatch, "users", "disable", "nobody@example.com")
        assert missing.exit_code == 1
        assert "no account" in missing.output
        assert [e.actor_id for e in events(app, "admin.user_disabled")] == [None]
