"""The ``idp`` command, run as an admin would run it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from idp import cli
from idp import db
from idp.services import secrets


@pytest.fixture
def idp(app, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """Run ``idp ARGS`` against the test database and keys; returns the result."""
    monkeypatch.setattr(cli, "_app", None)
    env = {
        "IDP_ENV": "test",
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_KEYS_DIR": settings.keys_dir,
        "IDP_SECRET_KEY": settings.secret_key,
        "IDP_ARGON2_MEMORY_KIB": "8",
        "IDP_ARGON2_TIME_COST": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(cli, "_app", None)
        try:
            return CliRunner().invoke(cli.main, list(args), input=input, catch_exceptions=False)
        finally:
            if cli._app is not None:
                # `idp demo` runs in development, where the logout sweeper starts at once.
                cli._app.extensions["idp"].background.stop()
                db.dispose(cli._app)

    return run


def test_clients_add_prints_a_secret_that_is_stored_only_as_a_hash(idp, app):
    result = idp(
        "clients",
        "add",
        "crm",
        "--name",
        "CRM",
        "--redirect-uri",
        "https://crm.example.com/cb",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--third-party",
    )
    assert result.exit_code == 0, result.output
    secret = result.output.split("client_secret: ")[1].split()[0]
    assert len(secret) >= 32
    client = app.extensions["idp"].clients.get("crm")
    assert client.secret_hash == secrets.digest(secret)
    assert client.display_name == "CRM"
    assert client.scopes == ("openid", "email")
    assert client.is_first_party is False


def test_clients_add_public_client_has_no_secret(idp, app):
    result = idp("clients", "add", "spa", "--public", "--redirect-uri", "http://localhost:3000/cb")
    assert result.exit_code == 0
    assert "client_secret" not in result.output
    assert app.extensions["idp"].clients.get("spa").is_public


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://crm.example.com/cb", "must use https"),
        ("https://crm.example.com/cb#frag", "must not contain a fragment"),
        ("crm/cb", "not an absolute https URI"),
    ],
)
def test_clients_add_refuses_bad_redirect_uris(idp, uri, message):
    result = idp("clients", "add", "crm", "--redirect-uri", uri)
    assert result.exit_code == 1
    assert message in result.output


def test_clients_update_list_show_rotate_remove(idp, app):
    idp("clients", "add", "crm", "--redirect-uri", "https://crm.example.com/cb")
    updated = idp(
        "clients",
        "update",
        "crm",
        "--post-logout-redirect-uri",
        "https://crm.example.com/",
        "--backchannel-logout-uri",
        "https://crm.example.com/logout",
        "--signing-alg",
        "ES256",
    )
    assert updated.exit_code == 0
    shown = json.loads(idp("clients", "show", "crm").output)
    assert shown["post_logout_redirect_uris"] == ["https://crm.example.com/"]
    assert shown["backchannel_logout_uri"] == "https://crm.example.com/logout"
    assert shown["signing_alg"] == "ES256"
    assert shown["redirect_uris"] == ["https://crm.example.com/cb"]
    assert "crm\tconfidential" in idp("clients", "list").output

    old_hash = app.extensions["idp"].clients.get("crm").secret_hash
    rotated = idp("clients", "rotate-secret", "crm")
    new_secret = rotated.output.split("client_secret: ")[1].split()[0]
    app.extensions["idp"].clients.invalidate()
    assert (
        app.extensions["idp"].clients.get("crm").secret_hash
        == secrets.digest(new_secret)
        != old_hash
    )

    assert idp("clients", "remove", "crm", "--yes").exit_code == 0
    app.extensions["idp"].clients.invalidate()
    assert app.extensions["idp"].clients.get("crm") is None
    assert idp("clients", "show", "crm").exit_code == 1


def test_keys_generate_is_idempotent_and_keys_are_private(idp, settings):
    assert "signing keys present" in idp("keys", "generate").output
    for path in Path(settings.keys_dir).iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_keys_rotate_list_and_retire(idp, settings):
    rotated = idp("keys", "rotate", "--alg", "RS256")
    assert rotated.exit_code == 0
    new_kid = rotated.output.split("key ")[1].split(";")[0]
    listing = idp("keys", "list").output
    assert f"{new_kid}  RS256  published" in listing
    old_kid = next(
        line.split()[0]
        for line in listing.splitlines()
        if " RS256 " in line and new_kid not in line
    )
    assert f"{old_kid}  RS256  signing" in listing

    retired = idp("keys", "retire", new_kid)  # cancels the rotation
    assert retired.exit_code == 0
    listing = idp("keys", "list").output
    assert f"{new_kid}  RS256  retired (still published)" in listing
    old_line = next(line for line in listing.splitlines() if line.startswith(old_kid))
    assert "signing" in old_line
    assert old_line.endswith("retires -")


def test_keys_retire_refuses_the_last_key_of_an_algorithm(idp):
    listing = idp("keys", "list").output
    es_kid = next(line.split()[0] for line in listing.splitlines() if " ES256 " in line)
    result = idp("keys", "retire", es_kid)
    assert result.exit_code == 1
    assert "last ES256 key" in result.output


def test_users_add_and_list(idp, app):
    result = idp("users", "add", "ann@example.com", "--name", "Ann", "--password", "Sikker-kode-1")
    assert result.exit_code == 0
    assert "ann@example.com\tAnn" in idp("users", "list").output
    with app.app_context():
        from idp.db import get_session

        user = app.extensions["idp"].accounts.authenticate(
            get_session(), "ANN@example.com", "Sikker-kode-1"
        )
        assert user is not None
        assert user.mfa_required  # the strict default


def test_users_add_without_required_two_step_verification(idp, app):
    result = idp("users", "add", "bo@example.com", "--no-mfa", "--password", "Sikker-kode-1")
    assert result.exit_code == 0
    assert app.extensions["idp"].accounts.find("bo@example.com").mfa_required is False


def test_demo_refuses_outside_development(idp):
    result = idp("demo")
    assert result.exit_code == 1
    assert "IDP_ENV=development" in result.output


def test_demo_registers_the_portal_and_a_user(idp, app, monkeypatch, tmp_path):
    monkeypatch.setenv("IDP_ENV", "development")
    env_file = tmp_path / "portal.env"
    result = idp("demo", "--env-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    password = result.output.split("with password ")[1].split()[0]
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    client = app.extensions["idp"].clients.get("portal")
    assert client.check_client_secret(values["PORTAL_CLIENT_SECRET"])
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    with app.app_context():
        from idp.db import get_session

        services = app.extensions["idp"]
        user = services.accounts.authenticate(get_session(), "kim.demo@example.com", password)
        assert user is not None
        # Two-step verification by SMS (to the outbox), and an emergency code.
        assert services.factors.methods(get_session(), user) == ["sms", "recovery"]
        code = result.output.split("Emergency code: ")[1].split()[0]
        assert services.factors.use_recovery_code(get_session(), user.id, code)
    assert "/dev/outbox" in result.output
    academy = dict(
        line.split("=", 1) for line in (tmp_path / "academy.env").read_text().splitlines()
    )
    assert (
        app.extensions["idp"]
        .clients.get("academy")
        .check_client_secret(academy["ACADEMY_CLIENT_SECRET"])
    )
    assert app.extensions["idp"].clients.get("academy").backchannel_logout_uri == (
        "http://localhost:5002/backchannel-logout"
    )
    assert app.extensions["idp"].accounts.find("admin.demo@example.com").is_admin
