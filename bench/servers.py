"""Starting the servers under test and waiting until they answer."""

from __future__ import annotations

import subprocess
import time

import requests


def wait_until_up(
    server: subprocess.Popen[bytes], issuer: str, what: str
) -> subprocess.Popen[bytes]:
    """Return ``server`` once ``issuer``'s discovery answers; kill it after 20 s."""
    for _ in range(100):
        try:
            if requests.get(issuer + "/.well-known/openid-configuration", timeout=1).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"{what} did not start")
