"""Discovery and JWKS: complete, truthful, cacheable."""

from __future__ import annotations

from http import HTTPStatus

import pytest


def test_discovery_names_this_issuer_and_its_endpoints(client):
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == HTTPStatus.OK
    doc = response.json
    assert doc["issuer"] == "http://localhost"
    for name in ("authorization", "token", "userinfo", "revocation", "introspection"):
        assert doc[f"{name}_endpoint"].startswith("http://localhost/")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert doc["request_uri_parameter_supported"] is False
    assert doc["authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize(
    ("field", "method", "expected"),
    [
        ("authorization_endpoint", "GET", HTTPStatus.BAD_REQUEST),
        ("token_endpoint", "POST", HTTPStatus.BAD_REQUEST),
        ("userinfo_endpoint", "GET", HTTPStatus.UNAUTHORIZED),
        ("revocation_endpoint", "POST", HTTPStatus.UNAUTHORIZED),
        ("introspection_endpoint", "POST", HTTPStatus.UNAUTHORIZED),
        ("jwks_uri", "GET", HTTPStatus.OK),
    ],
)
def test_every_advertised_endpoint_exists(client, field, method, expected):
    url = client.get("/.well-known/openid-configuration").json[field]
    path = url.removeprefix("http://localhost")
    response = client.open(path, method=method)
    assert response.status_code == expected


def test_jwks_publishes_rs256_and_es256_with_kid_use_alg(client):
    keys = client.get("/jwks.json").json["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]
    for key in keys:
        assert key["use"] == "sig"
        assert key["kid"]
        assert "d" not in key  # never the private part


@pytest.mark.parametrize("path", ["/jwks.json", "/.well-known/openid-configuration"])
def test_metadata_is_cacheable_and_conditional(client, path):
    first = client.get(path)
    assert first.headers["Cache-Control"] == "public, max-age=300"
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == HTTPStatus.NOT_MODIFIED


@pytest.mark.parametrize("path", ["/jwks.json", "/.well-known/openid-configuration"])
def test_metadata_answers_carry_the_usual_headers_and_head_works(client, path):
    page = client.get(path)
    assert page.headers["Content-Type"] == "application/json"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Access-Control-Allow-Origin"] == "*"
    head = client.head(path)
    assert head.status_code == HTTPStatus.OK
    assert head.get_data() == b""
    assert head.headers["ETag"] == page.headers["ETag"]
    assert client.post(path).status_code == HTTPStatus.METHOD_NOT_ALLOWED
