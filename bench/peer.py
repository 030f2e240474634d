"""The peer of ``make bench``: panva's oidc-provider (bench/peer/server.mjs),
started with the same clients and secrets and the same worker count, its own
RS256 and ES256 keys, its workers sharing one Redis database (db 13), which
seed() fills for the user endpoints (userinfo, introspection, refresh, authorize).

Its accounts are the IdP's own users: findAccount reads the claims (sub, name,
email, email_verified) of an active user from the PostgreSQL ``database`` with
one indexed query per call, as our UserInfo does; seed() logs the session in
as ``account``, the subject of such a user. ``database`` (a parameter of
prepare, seed and start, default DATABASE) must be the one our IdP under test
uses.

    env = prepare(secrets, directory, database=DATABASE)  # the peer's environment
    seeded = seed(secrets, directory, refresh_tokens, account, database=DATABASE)
    server = start(workers, secrets, directory, database=DATABASE)
"""

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
DATABASE = "postgresql://postgres@127.0.0.1:5432/idp_bench"
#: The peer's resource server (config.mjs): its access tokens are JWTs.
API = "urn:bench:api"


def available() -> bool:
    return (HERE / "node_modules" / "oidc-provider").is_dir()


def prepare(secrets: dict[str, str], directory: Path, database: str = DATABASE) -> dict[str, str]:
    """Write the peer's clients and keys into ``directory`` (the keys generated
    once per directory) and return the environment naming them and the users'
    ``database`` (PEER_DATABASE), for both server.mjs and seed.mjs (which share
    config.mjs). PEER_REDIS, if set, passes through (default:
    redis://127.0.0.1:6379/13)."""
    jwks = directory / "peer-jwks.json"
    if not jwks.exists():
        rs = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig", "kid": "rs"}, private=True)
        es = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig", "kid": "es"}, private=True)
        jwks.write_text(json.dumps({"keys": [rs.as_dict(private=True), es.as_dict(private=True)]}))
    clients = directory / "peer-clients.json"
    algs = {"bench-rs": "RS256", "bench-es": "ES256"}
    clients.write_text(
        json.dumps(
            [{"client_id": c, "client_secret": s, "alg": algs[c]} for c, s in secrets.items()]
        )
    )
    return {
        **os.environ,
        "PEER_PORT": str(PORT),
        "PEER_JWKS": str(jwks),
        "PEER_CLIENTS": str(clients),
        "PEER_DATABASE": database,
        "NODE_ENV": "production",
    }


def seed(
    secrets: dict[str, str],
    directory: Path,
    refresh_tokens: int,
    account: str,
    database: str = DATABASE,
) -> dict[str, str]:
    """Flush the peer's Redis database and seed it (bench/peer/seed.mjs) for
    ``account``, the subject of an active user of ``database`` (else it fails):
    returns {"access_token", "refresh_tokens_file", "cookie"}: an opaque access
    token (userinfo, introspection), a file of ``refresh_tokens`` single-use
    refresh tokens of bench-rs, and the Cookie header of a logged-in SSO session
    with bench-rs's grant (authorize answers with a code at once)."""
    out = directory / "peer-seed.json"
    env = {
        **prepare(secrets, directory, database),
        "PEER_ACCOUNT": account,
        "PEER_REFRESH_TOKENS": str(refresh_tokens),
        "PEER_OUT": str(out),
    }
    done = subprocess.run(
        ["node", str(HERE / "seed.mjs")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if done.returncode != 0:
        raise RuntimeError("seeding the peer failed: " + done.stderr.decode(errors="replace"))
    seeded: dict[str, str] = json.loads(out.read_text())
    return seeded


def start(
    workers: int, secrets: dict[str, str], directory: Path, database: str = DATABASE
) -> subprocess.Popen[bytes]:
    env = {**prepare(secrets, directory, database), "PEER_WORKERS": str(workers)}
    server = subprocess.Popen(
        ["node", str(HERE / "server.mjs")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return wait_until_up(server, ISSUER, "the peer")
