"""The ``idp`` command: run the server and administer it.

Settings come from ``IDP_*`` environment variables, as for the server.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy import select

from idp import admin
from idp import clock
from idp import create_app
from idp.config import ConfigError
from idp.config import Settings
from idp.context import Services
from idp.db import get_session
from idp.models import User
from idp.services import recovery
from idp.services.accounts import AccountError
from idp.services.accounts import UserProfile
from idp.services.audit import Origin
from idp.services.clients import GRANT_TYPES
from idp.services.clients import SCOPES
from idp.services.clients import ClientError
from idp.services.clients import ClientSpec
from idp.services.clients import RegisteredClient
from idp.services.keys import ALGORITHMS
from idp.services.keys import KeyManagementError

__all__ = ["main"]

_app: Flask | None = None


def get_app() -> Flask:
    global _app
    if _app is None:
        try:
            _app = create_app()
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
    return _app


def with_services(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run the command inside an app context, with the services as first argument."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = get_app()
        with app.app_context():
            try:
                return func(app.extensions["idp"], *args, **kwargs)
            except (ClientError, AccountError, KeyManagementError) as error:
                raise click.ClickException(str(error)) from None

    return wrapper


@click.group()
def main() -> None:
    """Administer the identity provider."""


@main.command()
@click.option("--host", default="localhost", show_default=True)
@click.option("--port", default=5000, show_default=True)
def run(host: str, port: int) -> None:
    """Run the development server (use gunicorn in production)."""
    get_app().run(host=host, port=port, threaded=True, use_reloader=False)


@main.command("config")
def show_config() -> None:
    """Show every setting with its current value (secrets hidden)."""
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for name, _default in Settings.documented():
        click.echo(f"{name}={settings.shown(name[4:].lower())}")


# -- database -----------------------------------------------------------------
@main.group()
def db() -> None:
    """The SQL schema."""


@db.command()
def upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from idp.migrations import upgrade as run_upgrade

    run_upgrade(get_app().extensions["idp.engine"])
    click.echo("database is up to date")


# -- keys -----------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Signing keys."""


def _print_keys(svc: Services) -> None:
    now = clock.now()
    for info in svc.keystore.infos():
        retired = _when(info.retired_at) if info.retired_at else "-"
        status = info.status(now, svc.settings.max_token_seconds)
        click.echo(
            f"{info.kid}  {info.alg}  {status:<26} signs from {_when(info.activates_at)}"
            f"  retires {retired}"
        )


def _when(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys.command("generate")
@with_services
def keys_generate(svc: Services) -> None:
    """Create a signing key for each algorithm that has none (idempotent)."""
    added = svc.keystore.generate()
    for info in added:
        click.echo(f"generated {info.alg} key {info.kid}")
    if not added:
        click.echo("signing keys present")


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, type=click.Choice(ALGORITHMS), help="Default: all.")
@click.option(
    "--now", "immediately", is_flag=True, help="Sign with the new key at once (compromise)."
)
@with_services
def keys_rotate(svc: Services, algs: tuple[str, ...], immediately: bool) -> None:
    """Publish a new key; it signs after IDP_KEY_ACTIVATION_SECONDS."""
    delay = 0 if immediately else svc.settings.key_activation_seconds
    for info in svc.keystore.rotate(algs or ALGORITHMS, delay):
        click.echo(f"published {info.alg} key {info.kid}; it signs from {_when(info.activates_at)}")


@keys.command("retire")
@click.argument("kid")
@click.option(
    "--compromised",
    is_flag=True,
    help="Withdraw it from the JWKS at once: its tokens stop verifying now.",
)
@with_services
def keys_retire(svc: Services, kid: str, compromised: bool) -> None:
    """Stop signing with KID; it stays published until its tokens expire."""
    info = svc.keystore.retire(kid, compromised=compromised)
    click.echo(f"retired {info.kid}" + (" and withdrew it from the JWKS" if compromised else ""))


@keys.command("list")
@with_services
def keys_list(svc: Services) -> None:
    """Every key with its state."""
    _print_keys(svc)


# -- clients --------------------------------------------------------------------
@main.group()
def clients() -> None:
    """Relying parties."""


def _client_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", "display_name", help="Display name, shown on login screens."),
        click.option(
            "--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeat)."
        ),
        click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True),
        click.option("--backchannel-logout-uri"),
        click.option("--frontchannel-logout-uri"),
        click.option("--initiate-login-uri", help="Where users start a login into this client."),
        click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES)),
        click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES)),
        click.option(
            "--first-party/--third-party",
            "is_first_party",
            default=None,
            help="First-party clients skip consent.",
        ),
        click.option("--signing-alg", type=click.Choice(ALGORITHMS)),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _spec(**values: Any) -> ClientSpec:
    for key in ("redirect_uris", "post_logout_redirect_uris", "scopes", "grant_types"):
        values[key] = list(values[key]) or None
    return ClientSpec(**values)


def _describe(client: RegisteredClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "display_name": client.display_name,
        "type": "public" if client.is_public else "confidential",
        "first_party": client.is_first_party,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "initiate_login_uri": client.initiate_login_uri,
        "scopes": list(client.scopes),
        "grant_types": list(client.grant_types),
        "signing_alg": client.signing_alg,
    }


@clients.command("add")
@click.argument("client_id")
@click.option("--public", "is_public", is_flag=True, help="A public client (no secret, PKCE).")
@_client_options
@with_services
def clients_add(svc: Services, client_id: str, is_public: bool, **values: Any) -> None:
    """Register a client. A confidential client's secret is printed once."""
    client, secret = svc.clients.add(_spec(client_id=client_id, is_public=is_public, **values))
    click.echo(json.dumps(_describe(client), indent=2))
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("Store it now: only its hash is kept.", err=True)


@clients.command("update")
@click.argument("client_id")
@_client_options
@with_services
def clients_update(svc: Services, client_id: str, **values: Any) -> None:
    """Change a client; options not given are left as they are."""
    client = svc.clients.update(client_id, _spec(**values))
    click.echo(json.dumps(_describe(client), indent=2))


@clients.command("list")
@with_services
def clients_list(svc: Services) -> None:
    for client in svc.clients.all():
        kind = "public" if client.is_public else "confidential"
        click.echo(f"{client.client_id}\t{kind}\t{client.display_name}")


@clients.command("show")
@click.argument("client_id")
@with_services
def clients_show(svc: Services, client_id: str) -> None:
    client = svc.clients.get(client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    click.echo(json.dumps(_describe(client), indent=2))


@clients.command("remove")
@click.argument("client_id")
@click.confirmation_option(prompt="Remove the client and all its grants?")
@with_services
def clients_remove(svc: Services, client_id: str) -> None:
    svc.clients.remove(client_id)
    click.echo(f"removed {client_id}")


@clients.command("rotate-secret")
@click.argument("client_id")
@with_services
def clients_rotate_secret(svc: Services, client_id: str) -> None:
    """Give the client a new secret; the old one stops working."""
    click.echo(f"client_secret: {svc.clients.rotate_secret(client_id)}")


# -- users ------------------------------------------------------------------------
@main.group()
def users() -> None:
    """Accounts."""


@users.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--given-name", default="")
@click.option("--family-name", default="")
@click.option("--title", "job_title", default="")
@click.option("--organization", default="")
@click.option("--admin", "is_admin", is_flag=True)
@click.option(
    "--mfa/--no-mfa",
    "mfa_required",
    default=True,
    show_default=True,
    help="Whether the account must set up two-step verification at its first login.",
)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_services
def users_add(svc: Services, email: str, password: str, **profile: Any) -> None:
    """Create an account with a password."""
    user = svc.accounts.create(email, UserProfile(**profile), password=password)
    click.echo(f"created {user.email} (sub {user.subject})")


@users.command("invite")
@click.argument("email")
@click.option("--name", default="", help="Full name; the first word becomes the given name.")
@click.option("--given-name", default="")
@click.option("--family-name", default="")
@click.option("--title", "job_title", default="")
@click.option("--organization", default="")
@click.option("--locale", type=click.Choice(["da", "en"]), default=None)
@click.option(
    "--client",
    "client_id",
    default=None,
    help="The inviting product (default: IDP_DEFAULT_CLIENT_ID).",
)
@with_services
def users_invite(svc: Services, email: str, client_id: str | None, **values: Any) -> None:
    """Create the account if needed and e-mail an activation link (valid 24 hours)."""
    from idp.invitations import invite

    name = values["name"].strip()
    if name and not values["given_name"]:
        values["given_name"], _, rest = name.partition(" ")
        values["family_name"] = values["family_name"] or rest
    profile = UserProfile(**{k: v for k, v in values.items() if v})
    client_id = client_id or svc.settings.default_client_id
    if svc.clients.get(client_id) is None:
        raise click.ClickException(f"no client {client_id}")
    user = invite(get_session(), email, profile, client_id)
    click.echo(f"invitation sent to {user.email}")


@users.command("list")
@with_services
def users_list(svc: Services) -> None:
    for user in svc.accounts.list():
        flags = ",".join(
            f for f, on in (("admin", user.is_admin), ("disabled", not user.is_active)) if on
        )
        click.echo(f"{user.email}\t{user.name}\t{flags}")


@users.command("set-password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_services
def users_set_password(svc: Services, email: str, password: str) -> None:
    svc.accounts.set_password(email, password)
    click.echo(f"password of {email} changed")


def _user_or_fail(svc: Services, email: str) -> User:
    user = get_session().scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise click.ClickException(f"no account {email}")
    return user


CLI_ORIGIN = Origin(user_agent="idp command line")


def _user_action(name: str, action: Callable[..., Any], help_text: str) -> None:
    @users.command(name, help=help_text)
    @click.argument("email")
    @with_services
    def command(svc: Services, email: str) -> None:
        user = _user_or_fail(svc, email)
        ended = action(get_session(), user, CLI_ORIGIN, None)
        svc.background.wait()  # the back-channel logouts leave before the command ends
        sessions = f" ({ended.sessions} sessions ended)" if ended else ""
        click.echo(f"{name}: {user.email}{sessions}")


_user_action("disable", admin.disable, "Disable the account and log it out everywhere.")
_user_action("enable", admin.enable, "Enable a disabled account.")
_user_action(
    "reset-factors", admin.reset_factors, "Forget its second factors; enrol again at next login."
)
_user_action(
    "force-password-reset",
    admin.force_password_reset,
    "Stop its password and e-mail a link to choose a new one.",
)
_user_action("resend-invite", admin.resend_invitation, "E-mail a new activation link.")


# -- sessions ---------------------------------------------------------------------
@main.group()
def sessions() -> None:
    """Login sessions: list, revoke (with back-channel logout to every product)."""


@sessions.command("list")
@click.option("--user", "email", required=True, help="The account's e-mail address.")
@with_services
def sessions_list(svc: Services, email: str) -> None:
    user = _user_or_fail(svc, email)
    for sso in sorted(svc.sessions.for_user(user.id), key=lambda s: s.created_at):
        started = dt.datetime.fromtimestamp(sso.created_at, dt.UTC).isoformat(timespec="seconds")
        click.echo(
            f"{sso.id}\t{started}\t{sso.ip or '-'}\t{' '.join(sso.amr)}\t{','.join(sso.clients)}"
        )


@sessions.command("revoke")
@click.option("--user", "email", help="Revoke every session of this account.")
@click.option("--session", "session_id", help="Revoke one session (its id from `sessions list`).")
@with_services
def sessions_revoke(svc: Services, email: str | None, session_id: str | None) -> None:
    if bool(email) == bool(session_id):
        raise click.UsageError("give either --user or --session")
    db = get_session()
    if email:
        ended = admin.revoke_all(db, _user_or_fail(svc, email), CLI_ORIGIN, None)
    else:
        sso = svc.sessions.by_id(session_id or "")
        if sso is None:
            raise click.ClickException("no such session (it may have ended already)")
        user = db.get(User, sso.user_id)
        ended = admin.revoke_session(db, user, sso, CLI_ORIGIN, None)  # type: ignore[arg-type]
    svc.background.wait()
    click.echo(f"{ended.sessions} sessions revoked, {ended.deliveries} products told")


# -- demo -------------------------------------------------------------------------
DEMO_EMAIL = "kim.demo@example.com"
DEMO_ADMIN = "admin.demo@example.com"
DEMO_PHONE = "+4520123160"
PORTAL_URL = "http://localhost:5001"
ACADEMY_URL = "http://localhost:5002"
PRODUCT_SCOPES = ["openid", "profile", "email", "phone", "organization", "offline_access"]


@main.command()
@click.option("--portal-url", default=PORTAL_URL, show_default=True)
@click.option("--academy-url", default=ACADEMY_URL, show_default=True)
@click.option("--env-dir", default="instance", show_default=True, type=click.Path(file_okay=False))
@with_services
def demo(svc: Services, portal_url: str, academy_url: str, env_dir: str) -> None:
    """Set up the two products and two demo users for local development.

    The portal (``portal``) and Akademiet (``academy``) are registered with
    back-channel logout; their client secrets go to ENV_DIR/portal.env and
    ENV_DIR/academy.env (git-ignored) for them to read. The demo user and the
    demo admin get fresh random passwords and emergency codes, printed here;
    their second factor is SMS, which lands in the development outbox.
    """
    if not svc.settings.is_development:
        raise click.ClickException("idp demo only runs with IDP_ENV=development")
    for client_id, name, url, prefix in (
        ("portal", "Customer Portal", portal_url, "PORTAL"),
        ("academy", "Akademiet", academy_url, "ACADEMY"),
    ):
        secret = _demo_client(svc, client_id, name, url)
        path = Path(env_dir) / f"{prefix.lower()}.env"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"{prefix}_ISSUER={svc.settings.issuer}\n{prefix}_CLIENT_ID={client_id}\n"
            f"{prefix}_CLIENT_SECRET={secret}\n{prefix}_URL={url}\n"
        )
        path.chmod(0o600)

    kim = _demo_user(
        svc,
        DEMO_EMAIL,
        UserProfile(
            name="Kim Demo",
            given_name="Kim",
            family_name="Demo",
            job_title="HR assistent",
            organization="Demo Organisation A/S",
            locale="da",
        ),
    )
    admin = _demo_user(
        svc,
        DEMO_ADMIN,
        UserProfile(name="Alex Admin", given_name="Alex", locale="da", is_admin=True),
    )
    click.echo("")
    click.echo(f"  Portal:     {portal_url}")
    click.echo(f"  Akademiet:  {academy_url}")
    click.echo(f"  IdP:        {svc.settings.issuer}  (admin: {svc.settings.issuer}/admin)")
    for email, (password, code) in ((DEMO_EMAIL, kim), (DEMO_ADMIN, admin)):
        click.echo(f"  Log in as {email} with password {password}")
        click.echo(f"    Emergency code: {code}")
    click.echo(f"  The SMS codes arrive in the outbox: {svc.settings.issuer}/dev/outbox")
    click.echo("")


def _demo_client(svc: Services, client_id: str, name: str, url: str) -> str:
    spec = ClientSpec(
        client_id=client_id,
        display_name=name,
        is_first_party=True,
        redirect_uris=[url + "/auth/callback"],
        post_logout_redirect_uris=[url + "/"],
        backchannel_logout_uri=url + "/backchannel-logout",
        initiate_login_uri=url + "/login",
        scopes=PRODUCT_SCOPES,
        grant_types=["authorization_code", "refresh_token"],
    )
    if svc.clients.get(client_id) is None:
        svc.clients.add(spec)
    else:
        svc.clients.update(client_id, spec)
    return svc.clients.rotate_secret(client_id)


def _demo_user(svc: Services, email: str, profile: UserProfile) -> tuple[str, str]:
    """Create or refresh a demo account with SMS as its second factor; returns
    its new password and emergency code."""
    password = "Demo-" + secrets.token_urlsafe(9)
    if svc.accounts.find(email) is None:
        svc.accounts.create(email, profile, password=password)
    else:
        svc.accounts.update(email, profile)
        svc.accounts.set_password(email, password)
    session = get_session()
    user = session.scalars(select(User).where(User.email == email)).one()
    user.phone_number, user.phone_number_verified = DEMO_PHONE, True
    session.commit()
    emergency_code = recovery.generate_code()
    svc.factors.save_recovery_code(session, user.id, emergency_code)
    return password, emergency_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
