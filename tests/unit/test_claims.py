from __future__ import annotations

import datetime as dt

import pytest

from idp.models import User
from idp.services.claims import ClaimsRequestError
from idp.services.claims import parse_claims_request
from idp.services.claims import scopes_for_claims
from idp.services.claims import user_claims


def _user() -> User:
    return User(
        subject="sub-1",
        email="kim@example.com",
        email_verified=True,
        name="Kim",
        given_name="Kim",
        family_name="",
        job_title="HR assistent",
        organization="Org",
        phone_number=None,
        updated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def test_claims_follow_the_scopes_and_skip_empty_values():
    assert user_claims(_user(), ["openid", "profile"]) == {
        "sub": "sub-1",
        "name": "Kim",
        "given_name": "Kim",
        "updated_at": 1767225600,
    }


def test_requested_claims_name_the_scopes_that_release_them():
    requested = {
        "id_token": {"job_title": {"essential": True}},
        "userinfo": {"email": None, "x": None},
    }
    assert scopes_for_claims(requested) == {"organization", "email"}


@pytest.mark.parametrize("raw", ["[]", "{not json", '{"userinfo": 3}', '{"other": {}}'])
def test_malformed_claims_requests_are_refused(raw):
    with pytest.raises(ClaimsRequestError):
        parse_claims_request(raw)
