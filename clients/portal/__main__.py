"""Run the customer portal's development server: ``python -m clients.portal``."""

import os
import sys

from clients.portal.app import ConfigError
from clients.portal.app import create_app


def main() -> None:
    """Start the portal on localhost, port PORTAL_PORT (default 5001)."""
    try:
        app = create_app()
    except ConfigError as exc:
        sys.exit(f"portal: {exc}")
    app.run(host="localhost", port=int(os.environ.get("PORTAL_PORT", 5001)), threaded=True)


if __name__ == "__main__":
    main()
