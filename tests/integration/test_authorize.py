"""The authorization endpoint: validation, errors, prompt, max_age, consent."""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from urllib.parse import urlencode

import pytest

from idp import clock
from tests.factories import REDIRECT_URI
from tests.factories import Pkce
from tests.flows import authorize
from tests.flows import authorize_params
from tests.flows import csrf_token
from tests.flows import form_action
from tests.flows import is_login_screen
from tests.flows import login_for_code
from tests.flows import query
from tests.flows import screen
from tests.flows import submit_login


@pytest.fixture
def rp(factory):  # type: ignore[no-untyped-def]
    client, _secret = factory.client()
    return client


@pytest.fixture
def user(factory):  # type: ignore[no-untyped-def]
    return factory.user()


def test_unknown_client_gets_an_error_page_not_a_redirect(client):
    response = authorize(client, authorize_params("no-such-client", Pkce.new()))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.location is None
    assert 'id="error">invalid_client<' in response.get_data(as_text=True)


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(client, rp):
    params = authorize_params(rp.client_id, Pkce.new(), redirect_uri="http://localhost:8000/evil")
    response = authorize(client, params)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.location is None
    assert 'id="error">invalid_request<' in response.get_data(as_text=True)


def test_missing_redirect_uri_gets_an_error_page(client, rp):
    params = authorize_params(rp.client_id, Pkce.new())
    del params["redirect_uri"]
    response = authorize(client, params)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.location is None


def test_unsupported_response_type_is_redirected_with_state_and_iss(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), response_type="token"))
    assert response.status_code == HTTPStatus.FOUND
    assert response.location.startswith(REDIRECT_URI + "?")
    assert query(response.location) == {
        "error": "unsupported_response_type",
        "error_description": query(response.location)["error_description"],
        "state": "state-123",
        "iss": "http://localhost",
    }


def test_invalid_scope_is_redirected(client, rp):
    response = authorize(
        client, authorize_params(rp.client_id, Pkce.new(), scope="openid wizardry")
    )
    assert query(response.location)["error"] == "invalid_scope"
    assert query(response.location)["state"] == "state-123"


def test_missing_pkce_is_refused(client, rp):
    response = authorize(client, authorize_params(rp.client_id, None))
    assert response.status_code == HTTPStatus.FOUND
    assert query(response.location)["error"] == "invalid_request"
    assert "code_challenge" in query(response.location)["error_description"]


def test_missing_pkce_is_refused_for_public_clients_even_when_relaxed(client, factory, app):
    public, _ = factory.client(is_public=True)
    response = authorize(client, authorize_params(public.client_id, None))
    assert query(response.location)["error"] == "invalid_request"


def test_plain_pkce_method_is_refused(client, rp):
    params = authorize_params(
        rp.client_id, None, code_challenge="a" * 43, code_challenge_method="plain"
    )
    response = authorize(client, params)
    assert query(response.location)["error"] == "invalid_request"
    assert "S256" in query(response.location)["error_description"]


def test_pkce_without_method_is_refused_because_it_would_mean_plain(client, rp):
    params = authorize_params(rp.client_id, None, code_challenge="a" * 43)
    response = authorize(client, params)
    assert query(response.location)["error"] == "invalid_request"


def test_without_session_the_user_is_sent_to_log_in(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    assert is_login_screen(response)
    assert response.location is None
    assert form_action(response).startswith("/login?flow=")


def test_login_page_shows_the_client_display_name_and_login_hint(client, rp):
    response = authorize(
        client, authorize_params(rp.client_id, Pkce.new(), login_hint="kim@example.com")
    )
    page = screen(client, response).get_data(as_text=True)
    assert "Test Portal" in page
    assert 'value="kim@example.com"' in page


def test_ui_locales_chooses_the_language_of_the_login_page(client, rp):
    danish = screen(client, authorize(client, authorize_params(rp.client_id, Pkce.new())))
    english = screen(
        client,
        authorize(client, authorize_params(rp.client_id, Pkce.new(), ui_locales="en-GB da")),
    )
    assert '<html lang="da">' in danish.get_data(as_text=True)
    assert "E-mailadresse" in danish.get_data(as_text=True)
    assert '<html lang="en">' in english.get_data(as_text=True)
    assert "E-mail address" in english.get_data(as_text=True)


def test_wrong_password_gets_the_same_answer_as_an_unknown_email(client, rp, user):
    first = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    wrong_password = submit_login(client, first, user.email, "Wrong-password-1")
    second = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    unknown = submit_login(client, second, "nobody@example.com", "Wrong-password-1")
    assert wrong_password.status_code == unknown.status_code == HTTPStatus.BAD_REQUEST
    message = "E-mailadressen eller adgangskoden er forkert."
    assert message in wrong_password.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)


def test_login_returns_a_code_state_and_issuer(client, rp, user):
    params = login_for_code(client, rp.client_id, user.email, Pkce.new())
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == "state-123"
    assert params["iss"] == "http://localhost"


def test_authorization_request_by_post_works(client, rp, user):
    # A form posted from another site carries no SameSite=Lax cookie (the
    # remembered address, the language): the e-mail screen is a GET of its own.
    response = client.post(
        "/authorize", data=authorize_params(rp.client_id, Pkce.new(), ui_locales="en")
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response.location.startswith("/login?flow=")
    page = screen(client, response.location)
    assert "E-mail address" in page.get_data(as_text=True)  # ui_locales of the form
    assert query(submit_login(client, page, user.email).location)["code"]


def test_the_email_screens_language_switch_keeps_the_flow(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    flow_path = form_action(response)
    link = re.search(r'href="(/language/en\?next=[^"]+)"', response.get_data(as_text=True))
    assert link
    assert query(html.unescape(link.group(1)))["next"] == flow_path
    switched = client.get(html.unescape(link.group(1)))
    assert switched.location == flow_path
    page = screen(client, switched.location)
    assert "E-mail address" in page.get_data(as_text=True)
    assert form_action(page) == flow_path  # the same flow, not a new one


def test_unknown_parameters_are_ignored(client, rp, user):
    params = login_for_code(client, rp.client_id, user.email, Pkce.new(), frobnicate="yes")
    assert "code" in params


def test_sso_session_answers_without_a_login(client, rp, user):
    login_for_code(client, rp.client_id, user.email, Pkce.new())
    response = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    assert response.status_code == HTTPStatus.FOUND
    assert "code" in query(response.location)


def test_prompt_none_without_session_is_login_required(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), prompt="none"))
    assert response.status_code == HTTPStatus.FOUND
    assert query(response.location)["error"] == "login_required"
    assert query(response.location)["state"] == "state-123"
    assert query(response.location)["iss"] == "http://localhost"


def test_prompt_none_with_session_returns_a_code(client, rp, user):
    login_for_code(client, rp.client_id, user.email, Pkce.new())
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), prompt="none"))
    assert "code" in query(response.location)


def test_prompt_none_combined_with_another_value_is_invalid(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), prompt="none login"))
    assert query(response.location)["error"] == "invalid_request"


def test_prompt_login_forces_a_new_login(client, rp, user):
    login_for_code(client, rp.client_id, user.email, Pkce.new())
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), prompt="login"))
    assert is_login_screen(response)
    assert form_action(response).startswith("/login?flow=")
    params = query(submit_login(client, response, user.email).location)
    assert "code" in params


def test_max_age_forces_reauthentication_when_the_login_is_older(client, rp, user, monkeypatch):
    login_for_code(client, rp.client_id, user.email, Pkce.new())
    recent = authorize(client, authorize_params(rp.client_id, Pkce.new(), max_age="600"))
    assert "code" in query(recent.location)
    later = clock.now() + 601
    monkeypatch.setattr(clock, "now", lambda: later)
    stale = authorize(client, authorize_params(rp.client_id, Pkce.new(), max_age="600"))
    assert is_login_screen(stale)
    assert form_action(stale).startswith("/login?flow=")
    none = authorize(
        client, authorize_params(rp.client_id, Pkce.new(), max_age="600", prompt="none")
    )
    assert query(none.location)["error"] == "login_required"


def test_max_age_must_be_a_number(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), max_age="soon"))
    assert query(response.location)["error"] == "invalid_request"


def test_id_token_hint_of_another_user_requires_login(client, factory, rp, user):
    from tests.flows import exchange

    other = factory.user()
    _, secret = factory.client("hint-client")
    pkce = Pkce.new()
    other_browser = client.application.test_client()
    code = login_for_code(other_browser, "hint-client", other.email, pkce)["code"]
    id_token = exchange(other_browser, "hint-client", secret, code, pkce).json["id_token"]

    login_for_code(client, rp.client_id, user.email, Pkce.new())
    response = authorize(
        client, authorize_params(rp.client_id, Pkce.new(), prompt="none", id_token_hint=id_token)
    )
    assert query(response.location)["error"] == "login_required"


def test_id_token_hint_that_is_not_ours_is_invalid(client, rp):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new(), id_token_hint="a.b.c"))
    assert query(response.location)["error"] == "invalid_request"


def test_login_flow_cannot_be_used_from_another_browser(client, app, rp, user):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    assert is_login_screen(response)
    thief = app.test_client()
    page = thief.get(form_action(response))
    assert page.status_code == HTTPStatus.BAD_REQUEST
    assert "Start venligst forfra" in page.get_data(as_text=True)


def test_a_browser_cookie_signed_with_another_key_carries_no_flow(client, app, rp, user):
    """The browser id's cookie is checked at every request (its serializer
    is made once): the same cookie signed with another key is not the browser."""
    from itsdangerous import URLSafeTimedSerializer

    response = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    name = app.config["SESSION_COOKIE_NAME"]
    real = client.get_cookie(name).value
    serializer = app.session_interface.get_signing_serializer(app)
    assert app.session_interface.get_signing_serializer(app) is serializer
    key = "not-the-key"
    forged = URLSafeTimedSerializer(
        key, "cookie-session", serializer.serializer, signer_kwargs=serializer.signer_kwargs
    ).dumps(serializer.loads(real))
    copier, forger = app.test_client(), app.test_client()
    copier.set_cookie(name, real)
    assert is_login_screen(copier.get(form_action(response)))
    forger.set_cookie(name, forged)
    page = forger.get(form_action(response))
    assert page.status_code == HTTPStatus.BAD_REQUEST
    assert "Start venligst forfra" in page.get_data(as_text=True)


def test_login_page_without_a_flow_says_start_again(client):
    response = client.get("/login")
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_login_post_without_csrf_token_is_refused(client, rp, user):
    response = authorize(client, authorize_params(rp.client_id, Pkce.new()))
    assert is_login_screen(response)
    posted = client.post(form_action(response), data={"email": user.email, "password": "x"})
    assert posted.status_code == HTTPStatus.BAD_REQUEST
    assert posted.location is None
    # Nothing was taken: the flow is still at the e-mail screen.
    assert is_login_screen(client.get(form_action(response)))


class TestConsent:
    @pytest.fixture
    def third_party(self, factory):  # type: ignore[no-untyped-def]
        client, _ = factory.client("third-party", is_first_party=False, display_name="Partner App")
        return client

    def _to_consent(self, client, user, **extra):  # type: ignore[no-untyped-def]
        response = authorize(client, authorize_params("third-party", Pkce.new(), **extra))
        if is_login_screen(response):
            response = submit_login(client, response, user.email)
        return response

    def test_consent_screen_is_shown_to_a_third_party_client(self, client, third_party, user):
        response = self._to_consent(client, user)
        assert response.location.startswith("/consent?flow=")
        page = client.get(response.location).get_data(as_text=True)
        assert "Partner App" in page
        assert "Din e-mailadresse" in page

    def test_claims_parameter_is_covered_by_consent(self, client, third_party, user):
        response = self._to_consent(
            client, user, scope="openid", claims='{"userinfo": {"email": null}}'
        )
        page = client.get(response.location).get_data(as_text=True)
        assert "Din e-mailadresse" in page

    def test_consent_is_remembered(self, client, third_party, user):
        response = self._to_consent(client, user)
        page = client.get(response.location)
        allowed = client.post(
            response.location, data={"decision": "allow", "csrf_token": csrf_token(page)}
        )
        assert "code" in query(allowed.location)
        again = authorize(client, authorize_params("third-party", Pkce.new()))
        assert "code" in query(again.location)

    def test_prompt_consent_shows_the_screen_again(self, client, third_party, user):
        response = self._to_consent(client, user)
        page = client.get(response.location)
        client.post(response.location, data={"decision": "allow", "csrf_token": csrf_token(page)})
        again = authorize(client, authorize_params("third-party", Pkce.new(), prompt="consent"))
        assert again.location.startswith("/consent?flow=")

    def test_denied_consent_is_access_denied(self, client, third_party, user):
        response = self._to_consent(client, user)
        page = client.get(response.location)
        denied = client.post(
            response.location, data={"decision": "deny", "csrf_token": csrf_token(page)}
        )
        assert query(denied.location)["error"] == "access_denied"
        assert query(denied.location)["state"] == "state-123"

    def test_prompt_none_without_consent_is_consent_required(self, client, third_party, user, rp):
        login_for_code(client, rp.client_id, user.email, Pkce.new())
        response = authorize(client, authorize_params("third-party", Pkce.new(), prompt="none"))
        assert query(response.location)["error"] == "consent_required"

    def test_consent_step_cannot_be_reached_before_login(self, client, third_party):
        response = authorize(client, authorize_params("third-party", Pkce.new()))
        assert is_login_screen(response)
        flow_id = query(form_action(response))["flow"]
        page = client.get("/consent?" + urlencode({"flow": flow_id}))
        # The flow's current screen, the e-mail screen; nothing is shown or granted.
        assert page.status_code == HTTPStatus.SEE_OTHER
        assert page.location == "/login?" + urlencode({"flow": flow_id})
        assert is_login_screen(client.get(page.location))


def test_password_hash_is_upgraded_when_the_argon2_parameters_change(
    settings, make_app, factory, user
):
    from idp.db import get_session
    from idp.models import User

    factory.client("rehash")
    stronger = make_app(settings.replace(argon2_time_cost=2))
    login_for_code(stronger.test_client(), "rehash", user.email, Pkce.new())
    with stronger.app_context():
        stored = get_session().get(User, user.id).password_hash
    assert stored != user.password_hash
    assert "t=2" in stored
