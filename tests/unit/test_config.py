from __future__ import annotations

import pytest

from idp.config import ConfigError
from idp.config import Settings


def test_settings_are_read_and_converted_from_the_environment():
    settings = Settings.from_env(
        {
            "IDP_ACCESS_TOKEN_SECONDS": "120",
            "IDP_COOKIE_SECURE": "yes",
            "IDP_REDIS_URL": "redis://x/1",
        }
    )
    assert settings.access_token_seconds == 120
    assert settings.secure_cookies is True
    assert settings.redis_url == "redis://x/1"


def test_malformed_number_names_the_variable():
    with pytest.raises(ConfigError, match="IDP_ACCESS_TOKEN_SECONDS must be a whole number"):
        Settings.from_env({"IDP_ACCESS_TOKEN_SECONDS": "five"})


def test_production_refuses_to_start_without_a_secret_key():
    with pytest.raises(ConfigError, match="IDP_SECRET_KEY"):
        Settings(env="production", issuer="https://id.example.com")


def test_production_requires_an_https_issuer():
    with pytest.raises(ConfigError, match="https"):
        Settings(env="production", issuer="http://id.example.com", secret_key="s" * 32)


def test_production_requires_an_encryption_key():
    with pytest.raises(ConfigError, match="IDP_ENCRYPTION_KEY"):
        Settings(env="production", issuer="https://id.example.com", secret_key="s" * 32)


def test_production_cookies_are_secure_by_default():
    settings = Settings(
        env="production",
        issuer="https://id.example.com",
        secret_key="s" * 32,
        encryption_key="k",
        smtp_url="smtps://mail.example.com",
        sms_url="https://sms.example.com/send",
    )
    assert settings.secure_cookies is True
    assert Settings().secure_cookies is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgresql_urls_use_psycopg3(url, expected):
    assert Settings(database_url=url).sqlalchemy_url == expected


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [name for name, _ in Settings.documented() if f"`{name}`" not in readme]
    assert missing == []


def test_argon2_needs_room_for_one_hash_at_a_time():
    assert Settings.from_env({"IDP_ARGON2_CONCURRENCY": "2"}).argon2_concurrency == 2
    with pytest.raises(ConfigError, match="IDP_ARGON2_CONCURRENCY must be at least 1"):
        Settings.from_env({"IDP_ARGON2_CONCURRENCY": "0"})
