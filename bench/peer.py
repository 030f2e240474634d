"""The peer of ``make bench``: panva's oidc-provider (bench/peer/server.mjs),
started with the same clients and secrets and the same worker count, its own
RS256 and ES256 keys."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey

from bench.servers import wait_until_up

HERE = Path(__file__).resolve().parent / "peer"
PORT = 8200
ISSUER = f"http://127.0.0.1:{PORT}"


def available() -> bool:
    return (HERE / "node_modules" / "oidc-provider").is_dir()


def start(workers: int, secrets: dict[str, str], directory: Path) -> subprocess.Popen[bytes]:
    rs = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig", "kid": "rs"}, private=True)
    es = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig", "kid": "es"}, private=True)
    jwks = directory / "peer-jwks.json"
    jwks.write_text(json.dumps({"keys": [rs.as_dict(private=True), es.as_dict(private=True)]}))
    clients = directory / "peer-clients.json"
    algs = {"bench-rs": "RS256", "bench-es": "ES256"}
    clients.write_text(
        json.dumps(
            [{"client_id": c, "client_secret": s, "alg": algs[c]} for c, s in secrets.items()]
        )
    )
    env = {
        **os.environ,
        "PEER_PORT": str(PORT),
        "PEER_WORKERS": str(workers),
        "PEER_JWKS": str(jwks),
        "PEER_CLIENTS": str(clients),
        "NODE_ENV": "production",
    }
    server = subprocess.Popen(
        ["node", str(HERE / "server.mjs")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return wait_until_up(server, ISSUER, "the peer")
