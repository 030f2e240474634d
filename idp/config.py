"""Typed settings, read from ``IDP_*`` environment variables.

Every setting has a documented default (see the README's configuration table).
:func:`Settings.from_env` is the only place that reads the environment; tests
and embedders pass a :class:`Settings` (or a mapping of overrides) to
:func:`idp.create_app` instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

__all__ = ["ConfigError", "Settings"]

ENVIRONMENTS = ("development", "test", "production")


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'instance' / 'idp.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """The identity provider's settings. Field ``foo_bar`` is ``IDP_FOO_BAR``."""

    #: ``development`` (local defaults allowed), ``test`` or ``production``.
    env: str = "development"
    #: The issuer identifier: scheme, host, port and path, no trailing slash.
    issuer: str = "http://localhost:5000"
    #: Signs cookies and CSRF tokens. Required outside development and test.
    secret_key: str = ""
    #: SQLAlchemy URL of the durable store. ``postgresql://`` uses psycopg 3.
    database_url: str = field(default_factory=_default_database_url)
    #: Redis URL of the ephemeral store. Empty: an in-process emulation.
    redis_url: str = ""
    #: Prefix of every Redis key, so several deployments can share one Redis.
    redis_prefix: str = "idp:"
    #: Directory with the signing keys and their manifest.
    keys_dir: str = "keys"
    #: A rotated key is published this long before it starts to sign.
    key_activation_seconds: int = 900
    #: How long the JWKS and discovery documents may be cached by clients.
    metadata_cache_seconds: int = 300
    access_token_seconds: int = 300
    id_token_seconds: int = 600
    #: Absolute lifetime of a refresh grant (not extended by rotation).
    refresh_token_seconds: int = 30 * 24 * 3600
    authorization_code_seconds: int = 60
    #: PostgreSQL: the grant a code exchange makes is committed only once it is
    #: on disk. Off (default): that commit does not wait for the write-ahead
    #: log's flush; a database crash may lose the last moment's new grants:
    #: their refresh tokens and UserInfo stop working, and their access
    #: tokens live out their lifetime (ending the session still ends them).
    durable_new_grants: bool = False
    #: How long a login or consent flow may take before it must start again.
    flow_seconds: int = 900
    session_idle_seconds: int = 8 * 3600
    session_absolute_seconds: int = 24 * 3600
    #: ``all``: every client must use PKCE (S256). ``public``: only public clients.
    pkce_required: str = "all"
    #: argon2id parameters for human passwords (OWASP: m=19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    #: argon2id hashes computed at once per process (the others wait): 1 for
    #: a process per core; cores ÷ processes when there are fewer processes.
    argon2_concurrency: int = 1
    #: Send cookies with ``Secure`` (and the ``__Host-`` prefix). Defaults to on
    #: in production.
    cookie_secure: bool | None = None
    #: How many reverse proxies in front of the IdP set X-Forwarded-For/-Proto/
    #: -Host. 0: none, the headers are ignored.
    trusted_proxies: int = 0
    default_locale: str = "da"
    brand_name: str = "Login"
    log_level: str = "INFO"
    #: Where users land after an activation that no authorization request started.
    default_client_id: str = "portal"
    #: Encrypts TOTP secrets at rest (Fernet keys, comma-separated, newest first).
    #: Required in production; development and test derive one from the secret key.
    encryption_key: str = ""
    #: SMTP server: ``smtp://``, ``smtp+starttls://`` or ``smtps://`` URL with
    #: optional ``user:password@``. Empty: e-mail goes to the development outbox.
    smtp_url: str = ""
    mail_from: str = "Login <no-reply@localhost>"
    #: SMS provider endpoint (JSON POST) and its bearer token. Empty: SMS outbox.
    sms_url: str = ""
    sms_token: str = ""
    #: Region of phone numbers typed without a country code.
    sms_default_region: str = "DK"
    #: How long an activation or password-reset link is valid.
    action_link_seconds: int = 24 * 3600
    password_min_length: int = 8
    password_max_length: int = 128
    password_require_uppercase: bool = True
    password_require_special: bool = True
    #: Failed passwords or codes (within 15 minutes) that lock an account.
    lockout_failures: int = 5
    #: The first lock's length; each further lock within a day doubles it (at most an hour).
    lockout_seconds: int = 300
    #: First retry of a failed back-channel logout; each further one waits twice as long.
    logout_retry_seconds: int = 10
    #: Attempts per back-channel logout before it is given up (8: about 20 minutes).
    logout_attempts: int = 8
    #: WebAuthn relying-party id (the issuer's host, or a parent domain); empty: the issuer's host.
    webauthn_rp_id: str = ""
    #: Origins that may use passkeys, comma-separated; empty: the issuer's origin.
    webauthn_origins: str = ""
    #: Attestation asked of new passkeys: none, indirect, direct or enterprise.
    webauthn_attestation: str = "none"

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"IDP_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if self.env == "production" and len(self.secret_key) < 32:
            raise ConfigError("IDP_SECRET_KEY must be set (32+ characters) in production")
        if self.issuer.endswith("/"):
            raise ConfigError("IDP_ISSUER must not end with a slash")
        if self.pkce_required not in ("all", "public"):
            raise ConfigError("IDP_PKCE_REQUIRED must be 'all' or 'public'")
        if self.env == "production" and not self.issuer.startswith("https://"):
            raise ConfigError("IDP_ISSUER must use https in production")
        if self.env == "production" and not self.encryption_key:
            raise ConfigError("IDP_ENCRYPTION_KEY must be set in production")
        if self.env == "production" and not (self.smtp_url and self.sms_url):
            raise ConfigError(
                "IDP_SMTP_URL and IDP_SMS_URL must be set in production "
                "(the development outboxes would keep links and codes in Redis)"
            )
        if self.webauthn_attestation not in ("none", "indirect", "direct", "enterprise"):
            raise ConfigError(
                "IDP_WEBAUTHN_ATTESTATION must be none, indirect, direct or enterprise"
            )
        if self.password_max_length < 64 or self.password_min_length < 8:
            raise ConfigError(
                "passwords must be allowed at least 64 characters and need at least 8"
            )
        if self.argon2_concurrency < 1:
            raise ConfigError("IDP_ARGON2_CONCURRENCY must be at least 1")

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.env == "production"

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying-party id."""
        return self.webauthn_rp_id or (urlsplit(self.issuer).hostname or "localhost")

    @property
    def webauthn_allowed_origins(self) -> list[str]:
        if self.webauthn_origins:
            return [o.strip().rstrip("/") for o in self.webauthn_origins.split(",") if o.strip()]
        parts = urlsplit(self.issuer)
        return [f"{parts.scheme}://{parts.netloc}"]

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the psycopg 3 driver chosen for PostgreSQL."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def max_token_seconds(self) -> int:
        """The longest lifetime of anything signed with a key."""
        return max(self.access_token_seconds, self.id_token_seconds)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``IDP_*`` variables, converting to each field's type."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get("IDP_" + f.name.upper())
            if raw is None or (raw == "" and f.name != "redis_url"):
                continue
            values[f.name] = _convert(f.name, str(f.type), raw)
        return cls(**values)

    #: Settings whose values are secrets, or URLs that may carry a password.
    SECRET_FIELDS = ("secret_key", "encryption_key", "sms_token")
    URL_FIELDS = ("database_url", "redis_url", "smtp_url", "sms_url")

    def shown(self, name: str) -> str:
        """The value of setting ``name`` with secrets hidden, for ``idp config``."""
        value = getattr(self, name)
        if name in self.SECRET_FIELDS:
            return "(set)" if value else "(not set)"
        if name in self.URL_FIELDS and value:
            parts = urlsplit(value)
            if parts.password:
                netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
                return urlunsplit(parts._replace(netloc=netloc))
        return str(value)

    @classmethod
    def documented(cls) -> list[tuple[str, str]]:
        """Each setting's variable name and default, for the README and ``idp config``."""
        defaults = cls()
        return [
            ("IDP_" + f.name.upper(), repr(getattr(defaults, f.name)))
            for f in dataclasses.fields(cls)
        ]


def _convert(name: str, type_name: str, raw: str) -> Any:
    if type_name.startswith("int"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"IDP_{name.upper()} must be a whole number") from None
    if type_name.startswith("bool"):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"IDP_{name.upper()} must be true or false")
    return raw
