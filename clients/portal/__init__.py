"""The customer portal (J4): a thin OpenID Connect relying party of the IdP."""

from clients.portal.app import ConfigError
from clients.portal.app import create_app

__all__ = ["ConfigError", "create_app"]
