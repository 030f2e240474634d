"""Run Akademiet's development server: ``python -m clients.academy``."""

import os
import sys

from clients.academy.app import ConfigError
from clients.academy.app import create_app


def main() -> None:
    """Start Akademiet on localhost, port ACADEMY_PORT (default 5002)."""
    try:
        app = create_app()
    except ConfigError as exc:
        sys.exit(f"academy: {exc}")
    app.run(host="localhost", port=int(os.environ.get("ACADEMY_PORT", 5002)), threaded=True)


if __name__ == "__main__":
    main()
