"""Logout and revocation: RP-initiated, back-channel (to a real HTTP server on
loopback, with retries), front-channel, and revoking sessions of a user."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from joserfc import jwt
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from idp import clock
from idp.db import get_session
from idp.models import Grant
from idp.models import LogoutDelivery
from idp.models import RefreshToken
from idp.models import User
from idp.services.audit import Origin
from idp.services.logout import BACKCHANNEL_EVENT
from tests.backchannel import Receiver
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import exchange
from tests.flows import login_for_code
from tests.flows import query
from tests.flows import submit_login


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def rp(factory, receiver):  # type: ignore[no-untyped-def]
    return factory.client(
        "portal",
        post_logout_redirect_uris=["http://localhost:8000/logged-out"],
        backchannel_logout_uri=receiver.url,
        frontchannel_logout_uri="http://localhost:8000/frontchannel-logout",
    )


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    return factory.user("kim@example.com")


def tokens_for(client, rp, user) -> dict:  # type: ignore[no-untyped-def,type-arg]
    pkce = Pkce.new()
    params = login_for_code(client, "portal", user.email, pkce)
    return exchange(client, "portal", rp[1], params["code"], pkce).get_json()


def logged_in(client) -> bool:  # type: ignore[no-untyped-def]
    response = authorize(client, authorize_params("portal", Pkce.new(), prompt="none"))
    return "code" in query(response.location)


def deliveries(app) -> list[LogoutDelivery]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return list(get_session().query(LogoutDelivery).order_by(LogoutDelivery.id))


def test_discovery_advertises_logout(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["end_session_endpoint"] == "http://localhost/logout"
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True
    assert metadata["frontchannel_logout_supported"] is True


def test_rp_initiated_logout_with_a_hint_returns_to_the_client_and_tells_every_product(
    app, client, rp, user, receiver
):
    tokens = tokens_for(client, rp, user)
    response = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "http://localhost:8000/logged-out",
            "state": "s 1",
        },
    )
    # The front-channel frame first, then on to the client.
    assert response.status_code == HTTPStatus.OK
    page = response.get_data(as_text=True)
    sid = jwt.decode(tokens["id_token"], app.extensions["idp"].keyring.keyset).claims["sid"]
    assert (
        f"http://localhost:8000/frontchannel-logout?iss=http%3A%2F%2Flocalhost&amp;sid={sid}"
        in page
    )
    assert 'href="http://localhost:8000/logged-out?state=s%201"' in page
    assert "frame-src http://localhost:8000" in response.headers["Content-Security-Policy"]
    assert "idp_session=;" in response.headers["Set-Cookie"]
    assert not logged_in(client)

    # The back channel: a signed logout token reaches the product.
    app.extensions["idp"].background.wait()
    (token,) = receiver.tokens
    decoded = jwt.decode(token, app.extensions["idp"].keyring.keyset)
    assert decoded.header["typ"] == "logout+jwt"
    claims = decoded.claims
    assert claims["iss"] == "http://localhost"
    assert claims["aud"] == "portal"
    assert claims["sid"] == sid
    assert claims["sub"] == user.subject
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims
    (delivery,) = deliveries(app)
    assert delivery.delivered_at is not None
    # And the refresh token of that session is dead.
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("portal", rp[1]),
    )
    assert refreshed.get_json()["error"] == "invalid_grant"


def test_without_a_hint_the_user_confirms(client, rp, user):
    login_for_code(client, "portal", user.email, Pkce.new())
    page = client.get("/logout")
    assert "Vil du logge ud?" in page.get_data(as_text=True)
    assert logged_in(client)  # a link alone logs nobody out
    forged = client.post("/logout", data={"confirm": "yes"})
    assert forged.status_code == HTTPStatus.BAD_REQUEST
    done = client.post("/logout", data={"confirm": "yes", "csrf_token": csrf_token(page)})
    assert "Du er logget ud" in done.get_data(as_text=True)
    assert not logged_in(client)


def test_a_hint_for_another_session_asks_first(app, client, rp, user):
    old = tokens_for(app.test_client(), rp, user)  # another browser's session
    login_for_code(client, "portal", user.email, Pkce.new())
    page = client.get("/logout", query_string={"id_token_hint": old["id_token"]})
    assert "Vil du logge ud?" in page.get_data(as_text=True)
    assert logged_in(client)


@pytest.mark.parametrize(
    ("query_string", "message"),
    [
        ({"post_logout_redirect_uri": "https://evil.example/"}, "ikke registreret"),
        ({"id_token_hint": "not-a-token"}, "ikke er vores"),
        ({"client_id": "nobody"}, "ukendt program"),
    ],
)
def test_bad_requests_get_an_error_page_and_no_redirect(client, rp, user, query_string, message):
    login_for_code(client, "portal", user.email, Pkce.new())
    if "post_logout_redirect_uri" in query_string:
        query_string = {**query_string, "client_id": "portal"}
    response = client.get("/logout", query_string=query_string)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in response.get_data(as_text=True)
    assert logged_in(client)


def test_a_product_that_was_down_receives_the_token_when_it_is_back(
    app, client, rp, user, receiver, monkeypatch
):
    tokens = tokens_for(client, rp, user)
    receiver.up = False
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    app.extensions["idp"].background.wait()
    (delivery,) = deliveries(app)
    assert delivery.delivered_at is None
    assert delivery.attempts == 1
    assert delivery.last_error == "HTTP 503"
    receiver.up = True
    later = clock.now() + 400  # long after the first token would have been too old
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context():
        assert app.extensions["idp"].logout.deliver_due() == 1
    (token,) = receiver.tokens
    claims = jwt.decode(token, app.extensions["idp"].keyring.keyset).claims
    assert claims["iat"] == later  # signed afresh for the retry
    (delivery,) = deliveries(app)
    assert delivery.attempts == 2
    with app.app_context():
        events = [e.event for e in app.extensions["idp"].audit.recent(get_session())]
    assert events[:2] == ["logout.delivered", "logout.failed"]


class TestRevocation:
    def test_revoking_a_user_ends_sessions_grants_and_live_access_tokens(
        self, app, client, rp, user
    ):
        tokens = tokens_for(client, rp, user)
        with app.app_context():
            ended = app.extensions["idp"].logout.end_user(
                get_session(), user.id, Origin(ip="127.0.0.1")
            )
        assert ended.sessions == 1
        assert ended.deliveries == 1
        assert not logged_in(client)
        introspected = client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=("portal", rp[1])
        ).get_json()
        assert introspected == {"active": False}
        userinfo = client.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        assert userinfo.status_code == HTTPStatus.UNAUTHORIZED
        refreshed = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=("portal", rp[1]),
        )
        assert refreshed.get_json()["error"] == "invalid_grant"

    def test_a_login_in_the_second_of_the_revocation_gets_working_tokens(
        self, app, client, rp, user, monkeypatch
    ):
        """The user's cutoff is a whole second, as ``iat`` is: the first
        login after an ending (a new password's, say) may fall in that same
        second, and its tokens must work."""
        old = tokens_for(client, rp, user)
        frozen = clock.now()
        monkeypatch.setattr(clock, "now", lambda: frozen)
        with app.app_context():
            app.extensions["idp"].logout.end_user(get_session(), user.id, Origin())
        fresh = tokens_for(app.test_client(), rp, user)
        for token, status in ((old, HTTPStatus.UNAUTHORIZED), (fresh, HTTPStatus.OK)):
            userinfo = client.get(
                "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]}
            )
            assert userinfo.status_code == status

    @pytest.mark.parametrize(
        "ending", ["the user's sessions", "one session", "the user's, the session gone already"]
    )
    def test_a_token_whose_grant_was_lost_still_ends_with_its_session(
        self, app, client, rp, user, ending, monkeypatch
    ):
        """A grant made in a database's last moment before a crash may be
        gone (its commit did not wait for the disk): ending the session still
        ends its access token, by the session id it carries."""
        tokens = tokens_for(client, rp, user)
        services = app.extensions["idp"]
        with app.extensions["idp.engine"].begin() as connection:
            connection.execute(delete(RefreshToken))
            connection.execute(delete(Grant))
        introspect = {"token": tokens["access_token"]}
        assert client.post("/introspect", data=introspect, auth=("portal", rp[1])).json["active"]
        with app.app_context():
            if ending == "one session":
                (sso,) = services.sessions.for_user(user.id)
                services.logout.end_session(get_session(), sso, Origin())
            else:
                if ending.endswith("gone already"):
                    # Replaced by another login in its browser, or expired:
                    # no longer among the user's sessions to end; only the
                    # user's cutoff, a later second than the token's, ends it.
                    (sso,) = services.sessions.for_user(user.id)
                    services.sessions.revoke(sso)
                    later = clock.now() + 1
                    monkeypatch.setattr(clock, "now", lambda: later)
                services.logout.end_user(get_session(), user.id, Origin())
        introspected = client.post("/introspect", data=introspect, auth=("portal", rp[1]))
        assert introspected.get_json() == {"active": False}
        userinfo = client.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        assert userinfo.status_code == HTTPStatus.UNAUTHORIZED

    @pytest.mark.parametrize(
        "ending",
        [
            "its session",
            "the user's sessions, its own gone already",
            "the user's sessions, its own replaced in its browser that second",
        ],
    )
    def test_a_code_issued_before_the_logout_makes_no_grant_after_it(
        self, app, client, rp, user, ending, monkeypatch
    ):
        """A code lives a minute: one still unexchanged when its session ends
        is refused, and leaves no grant behind (on either exchange path),
        also when its session had left the user's index before all of the
        user's sessions were ended: by the user's cutoff, or, replaced by a
        login in its browser within the cutoff's own second, by its id,
        remembered for the user."""
        if ending.endswith("that second"):
            frozen = clock.now()
            monkeypatch.setattr(clock, "now", lambda: frozen)
        pkce = Pkce.new()
        code = login_for_code(client, "portal", user.email, pkce)["code"]
        services = app.extensions["idp"]
        with app.app_context():
            (sso,) = services.sessions.for_user(user.id)
            if ending == "its session":
                services.logout.end_session(get_session(), sso, Origin())
            elif ending.endswith("gone already"):
                # Expired, or lost: not among the user's sessions an admin's
                # revocation a second later ends.
                services.sessions.revoke(sso)
                later = clock.now() + 1
                monkeypatch.setattr(clock, "now", lambda: later)
                services.logout.end_user(get_session(), user.id, Origin())
            else:
                login_for_code(client, "portal", user.email, Pkce.new(), prompt="login")
                assert sso.id not in [s.id for s in services.sessions.for_user(user.id)]
                services.logout.end_user(get_session(), user.id, Origin())
        response = exchange(client, "portal", rp[1], code, pkce)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert response.get_json()["error"] == "invalid_grant"
        with app.extensions["idp.engine"].connect() as connection:
            live = connection.execute(
                select(func.count()).select_from(Grant).where(Grant.revoked_at.is_(None))
            ).scalar_one()
        assert live == 0

    def test_a_replaced_session_is_remembered_as_long_as_its_codes_live(
        self, app, client, rp, user
    ):
        """A login in the same browser replaces the session without ending
        its grants; its id is kept for the user as long as a code lives."""
        login_for_code(client, "portal", user.email, Pkce.new())
        services = app.extensions["idp"]
        (first,) = services.sessions.for_user(user.id)
        pkce = Pkce.new()
        params = login_for_code(client, "portal", user.email, pkce, prompt="login")
        tokens = exchange(client, "portal", rp[1], params["code"], pkce).get_json()
        (second,) = services.sessions.for_user(user.id)
        assert second.id != first.id
        key = services.store.key("usess-replaced", str(user.id))
        code_seconds = app.extensions["idp.settings"].authorization_code_seconds
        assert 0 < services.store.call("TTL", key) <= code_seconds + 1
        assert services.sessions.replaced(user.id) == [first.id]
        userinfo = client.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        assert userinfo.status_code == HTTPStatus.OK

    def test_a_login_finishing_while_a_reset_ends_the_sessions_is_ended_too(
        self, app, client, rp, user, monkeypatch
    ):
        """The reset's new password commits and its ending of the user's
        sessions runs after this login checked the old password, just before
        it writes its session: the login ends its own session."""
        services = app.extensions["idp"]
        write = services.sessions._write

        def reset_then_write(session, now, create=False):  # type: ignore[no-untyped-def]
            if create:
                with app.extensions["idp.engine"].begin() as connection:
                    connection.execute(
                        update(User).where(User.id == user.id).values(password_hash="changed")
                    )
                services.logout.end_user(get_session(), user.id, Origin())
            return write(session, now, create=create)

        monkeypatch.setattr(services.sessions, "_write", reset_then_write)
        pkce = Pkce.new()
        answer = submit_login(
            client, authorize(client, authorize_params("portal", pkce)), user.email
        )
        monkeypatch.setattr(services.sessions, "_write", write)
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "Start venligst forfra" in answer.get_data(as_text=True)
        assert services.sessions.for_user(user.id) == []
        assert not logged_in(client)

    def test_a_request_that_read_the_session_before_it_ended_cannot_revive_it(
        self, app, client, rp, user
    ):
        login_for_code(client, "portal", user.email, Pkce.new())
        services = app.extensions["idp"]
        with app.app_context():
            (sso,) = services.sessions.for_user(user.id)
            services.logout.end_session(get_session(), sso, Origin())
            # A slow request still holding the session notes a new client.
            assert services.sessions.add_client(sso, "academy") is False
        assert not logged_in(client)
        assert services.sessions.for_user(user.id) == []

    def test_a_new_session_is_written_once_with_its_first_client(self, app, user):
        """A login's session is written with the client it reaches (one
        round trip), or on its own when it reaches none; the flag that says
        so is not stored."""
        sessions = app.extensions["idp"].sessions
        with app.app_context():
            cookie, sso = sessions.create(user.id, ["pwd"], "1fa", clock.now(), save=False)
            assert sessions.get(cookie) is None  # only in this request so far
            assert sessions.add_client(sso, "portal") is True
            stored = sessions.get(cookie)
            assert stored is not None
            assert stored.clients == ["portal"]
            assert stored.saved
            assert sessions.for_user(user.id) == [stored]
            raw = app.extensions["idp"].store.redis.get(
                app.extensions["idp"].store.key("sess", sso.key)
            )
            assert "saved" not in json.loads(raw)
            assert sessions.save(sso) is True  # written already: nothing to do

            cookie, alone = sessions.create(user.id, ["pwd"], "1fa", clock.now(), save=False)
            assert sessions.save(alone) is True
            assert sessions.get(cookie).clients == []

    def test_revoking_one_of_two_sessions_leaves_the_other(self, app, client, rp, user):
        laptop, phone = app.test_client(), app.test_client()
        laptop_tokens = tokens_for(laptop, rp, user)
        phone_tokens = tokens_for(phone, rp, user)
        sid = jwt.decode(laptop_tokens["id_token"], app.extensions["idp"].keyring.keyset).claims[
            "sid"
        ]
        services = app.extensions["idp"]
        with app.app_context():
            sso = services.sessions.by_id(sid)
            assert sso.reached == {"portal": sso.reached["portal"]}
            services.logout.end_session(get_session(), sso, Origin())
        assert not logged_in(laptop)
        assert logged_in(phone)
        refreshed = phone.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": phone_tokens["refresh_token"]},
            auth=("portal", rp[1]),
        )
        assert "access_token" in refreshed.get_json()
        dead = laptop.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": laptop_tokens["refresh_token"]},
            auth=("portal", rp[1]),
        )
        assert dead.get_json()["error"] == "invalid_grant"


def test_an_ending_is_kept_while_the_codes_it_covers_live(settings, make_app):
    """Access tokens shorter-lived than codes: a session's or a user's ending
    still outlives every code issued before it."""
    app = make_app(settings.replace(access_token_seconds=30, authorization_code_seconds=90))
    services = app.extensions["idp"]
    services.tokens.deny_sessions(["a-session"])
    key = services.store.key("deny", "sid", "a-session")
    assert 85 < services.store.call("TTL", key) <= 90
