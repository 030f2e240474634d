"""The customer portal: a minimal OpenID Connect relying party for the IdP."""

from clients.portal.app import ConfigError
from clients.portal.app import SessionStore
from clients.portal.app import create_app

__all__ = ["ConfigError", "SessionStore", "create_app"]
