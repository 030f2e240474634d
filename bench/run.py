"""``make bench``: the IdP in its production shape (granian or gunicorn workers,
PostgreSQL, Redis), loaded with wrk on each hot endpoint and with a Python
driver for complete password + TOTP logins. Results go to
``bench/results/results.md`` and ``bench/results/results.png``.

Settings (environment): BENCH_SERVER (granian; or gunicorn), BENCH_WORKERS (2),
BENCH_WORKER_CLASS (gthread, for gunicorn),
BENCH_THREADS (3), BENCH_CONNECTIONS (32), BENCH_SECONDS (10),
BENCH_DATABASE (postgresql://postgres@127.0.0.1:5432/idp_bench; dropped and
created again), BENCH_REDIS (redis://127.0.0.1:6379/14; flushed),
BENCH_USERS (extra accounts in the user table, 0), BENCH_SCALE (users and sessions of
the scale phase, 1,000,000; 0 skips it), BENCH_ONLY (run only the endpoints whose names
contain one of these comma-separated words), BENCH_BROWSERS (browsers logging in at once, 8: wrk threads of one connection).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import urlencode

import psycopg
import pyotp
import redis

from bench import peer
from bench.servers import wait_until_up

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PORT = 8100
ISSUER = f"http://127.0.0.1:{PORT}"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
WORKER_CLASS = os.environ.get("BENCH_WORKER_CLASS", "gthread")
THREADS = int(os.environ.get("BENCH_THREADS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
DATABASE = os.environ.get("BENCH_DATABASE", "postgresql://postgres@127.0.0.1:5432/idp_bench")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
EXTRA_USERS = int(os.environ.get("BENCH_USERS", "0"))
#: Users and live sessions for the scale runs (0 skips them).
SCALE = int(os.environ.get("BENCH_SCALE", "1000000"))
#: Browsers logging in at once in the login benchmark.
BROWSERS = int(os.environ.get("BENCH_BROWSERS", "8"))
#: The order of the side-by-side runs of each endpoint: ours (A) and the
#: peer's (B) alternate so that a drift of the machine's speed, linear over
#: the eight runs, weighs the same on both sides (A at 0, 3, 5, 6; B at 1, 2,
#: 4, 7); each side's four runs are averaged.
SIDE_ORDER = ("ours", "peer", "peer", "ours", "peer", "ours", "ours", "peer")
#: A run's wrk settings, or what makes them when the run starts.
WrkEnv = dict[str, str] | Callable[[], dict[str, str]]
RUNS_PER_SIDE = SIDE_ORDER.count("ours")
#: Only the endpoints whose names contain one of these (comma-separated), for a quick look.
ONLY = [part.strip() for part in os.environ.get("BENCH_ONLY", "").split(",") if part.strip()]


def selected(name: str) -> bool:
    return not ONLY or any(part in name for part in ONLY)


def environment(keys_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "IDP_ENV": "development",
        "IDP_ISSUER": ISSUER,
        "IDP_DATABASE_URL": DATABASE,
        "IDP_REDIS_URL": REDIS,
        "IDP_REDIS_PREFIX": "bench:",
        "IDP_KEYS_DIR": keys_dir,
        "IDP_SECRET_KEY": "bench-" + "k" * 40,
        # Many simulated clients behind one proxy: the login driver sends
        # X-Forwarded-For, so per-IP limits apply per simulated client.
        "IDP_TRUSTED_PROXIES": "1",
    }


def fresh_database() -> None:
    base, _, name = DATABASE.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS).flushdb()


def settle_database() -> None:
    """After the bulk seeding: statistics for the planner, and the written
    pages flushed now rather than by a checkpoint during a measured run."""
    with psycopg.connect(DATABASE, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


#: The WSGI server, chosen by measurement: granian (default) or gunicorn (BENCH_WORKER_CLASS).
SERVER = os.environ.get("BENCH_SERVER", "granian")


def start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    if SERVER == "granian":
        command = [
            str(Path(sys.executable).parent / "granian"),
            "--interface", "wsgi", "--workers", str(WORKERS),
            "--blocking-threads", str(THREADS),
            "--host", "127.0.0.1", "--port", str(PORT), "--no-access-log",
            "--factory", "idp:create_app",
        ]  # fmt: skip
        return wait_until_up(subprocess.Popen(command, env=env), ISSUER, "the IdP")
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers", str(WORKERS),
        "--worker-class", WORKER_CLASS,
        "--threads", str(THREADS),
        "--bind", f"127.0.0.1:{PORT}",
        "--log-level", "warning",
        "idp:create_app()",
    ]  # fmt: skip
    return wait_until_up(subprocess.Popen(command, env=env), ISSUER, "the IdP")


WRK_LINE = re.compile(r"Requests/sec:\s+([\d.]+)")
LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    path: str,
    *,
    script: str = "request.lua",
    base: str = ISSUER,
    seconds: int = SECONDS,
    per: int = 1,
    **env: str,
) -> dict[str, float]:
    """Run wrk for ``seconds`` at CONNECTIONS; requests/s (divided by ``per``,
    the requests of one operation), p50 and p99 (ms) per request, errors."""
    command = [
        "wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
        "-s", str(HERE / "wrk" / script), base + path,
    ]  # fmt: skip
    output = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    latencies = {p: float(v) * UNIT[u] for p, v, u in LATENCY.findall(output)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(WRK_LINE.search(output).group(1)) / per,  # type: ignore[union-attr]
        "p50": latencies.get("50", 0.0),
        "p99": latencies.get("99", 0.0),
        "errors": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def form(
    method: str, body: dict[str, str], auth: str | None = None, **headers: str
) -> dict[str, str]:
    pairs = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    if auth:
        pairs["Authorization"] = auth
    return {
        "WRK_METHOD": method,
        "WRK_BODY": urlencode(body),
        "WRK_HEADERS": "|".join(f"{k}: {v}" for k, v in pairs.items()),
    }


#: RFC 7636's example: the verifier of the code_challenge the benchmark sends.
PKCE_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CODE_FLOW = "authorize → code → token (code flows/s)"
#: The same, against the peer issuing opaque access tokens (one signature fewer).
CODE_FLOW_OPAQUE = "code flow, peer's access token opaque"
LOGIN = "login: password + TOTP (logins/s)"
#: The chart's colours: ahead or within the target, behind or over it, and
#: rows no target applies to (a whole login's latency, the reference row).
GOOD, BAD, OTHER = "#1f7a4d", "#b3261e", "#8a93a3"


def code_flow(authorize: str, token: str, cookie: str, auth: str) -> dict[str, Any]:
    """wrk settings for bench/wrk/code_flow.lua: authorize with the session,
    exchange each code (two requests per flow)."""
    from bench.seed import REDIRECT_URI

    return {
        "script": "code_flow.lua",
        "per": 2,
        "WRK_AUTHORIZE": authorize,
        "WRK_TOKEN": token,
        "WRK_COOKIE": cookie,
        "WRK_AUTH": auth,
        "WRK_VERIFIER": PKCE_VERIFIER,
        "WRK_REDIRECT": quote(REDIRECT_URI, safe=""),
    }


def one_code_flow(base: str, authorize: str, cookie: str, auth: str) -> dict[str, Any]:
    """One authorize → code → token against ``base``, as code_flow.lua makes
    them: the token response, so both sides' token formats can be checked."""
    from bench.seed import REDIRECT_URI

    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", authorize, headers={"Cookie": cookie})
        answer = connection.getresponse()
        answer.read()
        found = re.search(r"[?&]code=([^&]+)", answer.headers.get("Location", ""))
        if found is None:
            raise RuntimeError(f"{base}: no code: {answer.status} {answer.headers.get('Location')}")
        body = urlencode(
            {
                "grant_type": "authorization_code",
                "code": found.group(1),
                "redirect_uri": REDIRECT_URI,
                "code_verifier": PKCE_VERIFIER,
            }
        )
        headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
        connection.request("POST", "/token", body=body, headers=headers)
        answer = connection.getresponse()
        token: dict[str, Any] = json.loads(answer.read())
    finally:
        connection.close()
    if answer.status != 200:
        raise RuntimeError(f"{base}: the code exchange failed: {token}")
    return token


def is_jwt(token: str) -> bool:
    return token.count(".") == 2


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# -- complete logins ------------------------------------------------------------------------
LOGINS = re.compile(r"LOGINS (\d+) FAILED (\d+) SECONDS ([\d.]+) P50 ([\d.]+) P99 ([\d.]+)")


def logins(emails: list[str], seconds: int, browsers: int = BROWSERS) -> dict[str, float]:
    """Complete logins per second by ``browsers`` browsers at once (wrk with
    bench/wrk/login.lua, a thread and a connection each), every account used
    once; p50 and p99 of a whole login (four requests: authorize, e-mail,
    password, code)."""
    from bench.seed import PASSWORD
    from bench.seed import REDIRECT_URI
    from bench.seed import TOTP_SECRET

    with tempfile.TemporaryDirectory(prefix="idp-bench-logins-") as directory:
        accounts, codes = Path(directory) / "accounts", Path(directory) / "codes"
        accounts.write_text("\n".join(emails) + "\n")
        totp, now = pyotp.TOTP(TOTP_SECRET), int(time.time()) // 30
        codes.write_text(
            "".join(
                f"{step} {totp.at(step * 30)}\n" for step in range(now - 1, now + seconds // 30 + 3)
            )
        )
        params = {
            "response_type": "code",
            "client_id": "bench-rs",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        command = [
            "wrk", f"-t{browsers}", f"-c{browsers}", f"-d{seconds}s",
            "-s", str(HERE / "wrk" / "login.lua"), ISSUER,
        ]  # fmt: skip
        env = {
            **os.environ,
            "WRK_THREADS": str(browsers),
            "WRK_ACCOUNTS": str(accounts),
            "WRK_CODES": str(codes),
            "WRK_AUTHORIZE": "/authorize?" + urlencode(params),
            "WRK_PASSWORD": PASSWORD,
            "WRK_REDIRECT": REDIRECT_URI,
        }
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = run.stdout
    found = LOGINS.search(output)
    if run.returncode or found is None:
        raise RuntimeError(f"wrk's logins failed:\n{output}{run.stderr}")
    done, failed = int(found.group(1)), int(found.group(2))
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    print(f"  login driver (wrk): {cpu * 1000 / max(done, 1):.2f} ms CPU per login", flush=True)
    return {
        "rps": done / float(found.group(3)),
        "p50": float(found.group(4)),
        "p99": float(found.group(5)),
        "errors": float(failed),
        "socket_errors": 1.0 if "Socket errors" in output else 0.0,
    }


# -- the run ---------------------------------------------------------------------------------
def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    keys_dir = tempfile.mkdtemp(prefix="idp-bench-keys-")
    env = environment(keys_dir)
    fresh_database()
    idp = str(Path(sys.executable).parent / "idp")
    subprocess.run([idp, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([idp, "keys", "generate"], env=env, check=True, capture_output=True)

    os.environ.update(env)
    from bench.seed import mint_access_token
    from bench.seed import seed
    from idp import create_app

    tokens_needed = 2000 * SECONDS
    login_seconds = max(SECONDS, 10)
    # Accounts for the logins (each logs in once), room for 300 logins a
    # second: the two seconds of warm-up, then the run. Each of wrk's browsers
    # has its own share, and one may log in twice as often as the average (at
    # 150 a second one ran out in the warm-up at 84 a second); a browser that
    # runs out stops the benchmark with that message.
    warm_up_logins = 300 * 2
    # Refresh tokens: the warm-up's pool, the table's, one per side-by-side run of ours.
    pools = 2 + RUNS_PER_SIDE
    print(f"seeding: {pools * tokens_needed} refresh tokens, {EXTRA_USERS} extra users", flush=True)
    app = create_app()
    seeded = seed(
        app,
        refresh_tokens=pools * tokens_needed,
        login_users=warm_up_logins + 300 * login_seconds,
        extra_users=EXTRA_USERS,
    )
    all_tokens = Path(keys_dir) / "refresh-tokens.txt"
    all_tokens.write_text("\n".join(seeded.refresh_tokens) + "\n")
    # Pools of single-use tokens: the warm-up's, the table's run, the side-by-side runs.
    warm_up_tokens, token_file, *ours_refresh = split_lines(
        all_tokens, pools, Path(keys_dir), "refresh"
    )

    settle_database()
    users, _ = users_and_sessions()
    server = start_server(env)
    rs, es = (
        basic("bench-rs", seeded.secrets["bench-rs"]),
        basic("bench-es", seeded.secrets["bench-es"]),
    )
    authorize_query = urlencode(
        {
            "response_type": "code",
            "client_id": "bench-rs",
            "redirect_uri": "http://127.0.0.1:9/callback",
            "scope": "openid profile",
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    cookie = f"idp_session={seeded.session_cookie}"

    def fresh() -> str:
        return mint_access_token(app, seeded)

    scale_cases = [
        ("token client_credentials RS256", lambda: wrk("/token", **form("POST", {"grant_type": "client_credentials"}, rs))),
        ("userinfo", lambda: wrk("/userinfo", WRK_HEADERS=f"Authorization: Bearer {fresh()}")),
        ("authorize with SSO session", lambda: wrk("/authorize?" + authorize_query, WRK_HEADERS=f"Cookie: {cookie}")),
    ]  # fmt: skip
    cases = [
        ("discovery", lambda: wrk("/.well-known/openid-configuration")),
        ("JWKS", lambda: wrk("/jwks.json")),
        ("token client_credentials RS256", lambda: wrk("/token", **form("POST", {"grant_type": "client_credentials"}, rs))),
        ("token client_credentials ES256", lambda: wrk("/token", **form("POST", {"grant_type": "client_credentials"}, es))),
        ("token refresh_token", lambda: wrk("/token", script="refresh.lua", WRK_TOKENS=str(token_file), WRK_AUTH=rs, WRK_THREADS="2")),
        ("introspection", lambda: wrk("/introspect", **form("POST", {"token": fresh()}, rs))),
        ("userinfo", lambda: wrk("/userinfo", WRK_HEADERS=f"Authorization: Bearer {fresh()}")),
        ("authorize with SSO session", lambda: wrk("/authorize?" + authorize_query, WRK_HEADERS=f"Cookie: {cookie}")),
        (CODE_FLOW, lambda: wrk("/authorize", **code_flow("/authorize?" + authorize_query, "/token", cookie, rs))),
        (LOGIN, lambda: logins(seeded.login_emails[warm_up_logins:], login_seconds)),
    ]  # fmt: skip
    results: list[tuple[str, dict[str, float]]] = []
    try:
        # Warm-up: every endpoint for a moment, so the workers have loaded keys
        # and clients, opened their pooled connections and prepared their
        # statements, and PostgreSQL has settled after the bulk insert.
        for path, env in [
            ("/.well-known/openid-configuration", {}),
            ("/token", form("POST", {"grant_type": "client_credentials"}, rs)),
            ("/token", {"script": "refresh.lua", "WRK_TOKENS": str(warm_up_tokens), "WRK_AUTH": rs, "WRK_THREADS": "2"}),
            ("/introspect", form("POST", {"token": fresh()}, rs)),
            ("/userinfo", {"WRK_HEADERS": f"Authorization: Bearer {fresh()}"}),
            ("/authorize?" + authorize_query, {"WRK_HEADERS": f"Cookie: {cookie}"}),
        ]:  # fmt: skip
            wrk(path, seconds=2, **env)
        logins(seeded.login_emails[:warm_up_logins], seconds=2)
        for name, run in cases:
            if not selected(name):
                continue
            outcome = run()
            results.append((name, outcome))
            print(
                f"{name:38} {outcome['rps']:9.1f}/s  p50 {outcome['p50']:7.2f} ms  "
                f"p99 {outcome['p99']:7.2f} ms  errors {int(outcome['errors'])}",
                flush=True,
            )
        compared = (
            side_by_side(seeded, Path(keys_dir), fresh, ours_refresh, cookie, authorize_query)
            if peer.available()
            else []
        )
        scale = scaled(app, scale_cases) if SCALE else []
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(keys_dir, ignore_errors=True)
    report(results, scale, compared, users)


def side_by_side(
    seeded: Any,
    directory: Path,
    fresh: Callable[[], str],
    ours_refresh: list[Path],
    cookie: str,
    query: str,
) -> list[tuple[str, dict, dict]]:  # type: ignore[type-arg]
    """Every hot endpoint against the peer (oidc-provider) with the same
    clients, workers, user and token signing; ours and the peer's runs alternate
    (:data:`SIDE_ORDER`) so the machine's drift cancels. The peer's grants,
    session and tokens are seeded in its own store (Redis), its accounts read
    from the same PostgreSQL users table as ours."""
    secrets = seeded.secrets
    rs, es = basic("bench-rs", secrets["bench-rs"]), basic("bench-es", secrets["bench-es"])
    cc = {"grant_type": "client_credentials"}
    peer_cc = {"grant_type": "client_credentials", "scope": "api"}
    theirs = peer.seed(secrets, directory, RUNS_PER_SIDE * 2000 * SECONDS, seeded.subject, DATABASE)
    peer_refresh = split_lines(
        Path(theirs["refresh_tokens_file"]), RUNS_PER_SIDE, directory, "peer-refresh"
    )

    def same(path: str, env: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
        return [(path, env)] * RUNS_PER_SIDE

    def refresh(files: list[Path]) -> list[tuple[str, dict[str, str]]]:
        return [
            (
                "/token",
                {"script": "refresh.lua", "WRK_TOKENS": str(f), "WRK_AUTH": rs, "WRK_THREADS": "2"},
            )
            for f in files
        ]

    # Our access tokens live five minutes and the side-by-side runs take longer:
    # a run that needs one gets its settings, and a new token, when it starts.
    def userinfo(path: str, token: Callable[[], str]) -> list[tuple[str, WrkEnv]]:
        return [(path, lambda: {"WRK_HEADERS": f"Authorization: Bearer {token()}"})] * RUNS_PER_SIDE

    # The peer's user access tokens are JWTs only for a resource server (its
    # UserInfo takes opaque ones): the code flow names its API.
    jwt_query = urlencode(
        {**dict(parse_qsl(query)), "scope": "openid profile api", "resource": peer.API}
    )
    ours_code_flow = code_flow("/authorize?" + query, "/token", cookie, rs)
    cases = [
        ("discovery", same("/.well-known/openid-configuration", {}), same("/.well-known/openid-configuration", {})),
        ("JWKS", same("/jwks.json", {}), same("/jwks", {})),
        ("token client_credentials RS256", same("/token", form("POST", cc, rs)), same("/token", form("POST", peer_cc, rs))),
        ("token client_credentials ES256", same("/token", form("POST", cc, es)), same("/token", form("POST", peer_cc, es))),
        ("token refresh_token", refresh(ours_refresh), refresh(peer_refresh)),
        ("introspection", [("/introspect", lambda: form("POST", {"token": fresh()}, rs))] * RUNS_PER_SIDE, same("/token/introspection", form("POST", {"token": theirs["access_token"]}, rs))),
        ("userinfo", userinfo("/userinfo", fresh), userinfo("/me", lambda: theirs["access_token"])),
        ("authorize with SSO session", same("/authorize?" + query, {"WRK_HEADERS": f"Cookie: {cookie}"}), same("/auth?" + query, {"WRK_HEADERS": f"Cookie: {theirs['cookie']}"})),
        (CODE_FLOW, same("/authorize", ours_code_flow), same("/auth", code_flow("/auth?" + jwt_query, "/token", theirs["cookie"], rs))),
        (CODE_FLOW_OPAQUE, same("/authorize", ours_code_flow), same("/auth", code_flow("/auth?" + query, "/token", theirs["cookie"], rs))),
    ]  # fmt: skip
    server = peer.start(WORKERS, secrets, directory, DATABASE)
    rows = []
    try:
        subprocess.run(
            ["wrk", "-t2", f"-c{CONNECTIONS}", "-d3s", peer.ISSUER + "/jwks"],
            capture_output=True,
            check=True,
        )
        # The same token format on both sides: a JWT access token and an ID token.
        for base, authorize, session in (
            (ISSUER, "/authorize?" + query, cookie),
            (peer.ISSUER, "/auth?" + jwt_query, theirs["cookie"]),
        ):
            answer = one_code_flow(base, authorize, session, rs)
            if not (is_jwt(answer["access_token"]) and is_jwt(answer["id_token"])):
                raise RuntimeError(f"{base}: the code flow's tokens are not JWTs: {answer}")
        for name, ours_runs, peer_runs in cases:
            if not selected(name):
                continue
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "peer": []}
            for side in SIDE_ORDER:
                path, env = (ours_runs if side == "ours" else peer_runs)[len(runs[side])]
                base = ISSUER if side == "ours" else peer.ISSUER
                runs[side].append(wrk(path, base=base, **(env() if callable(env) else env)))
            ours, them = _mean(runs["ours"]), _mean(runs["peer"])
            rows.append((name, ours, them))
            print(
                f"{name:32} ours {ours['rps']:8.0f}/s p99 {ours['p99']:6.1f} ms | "
                f"peer {them['rps']:8.0f}/s p99 {them['p99']:6.1f} ms | "
                f"ratio {ours['rps'] / them['rps']:.2f}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def split_lines(source: Path, parts: int, directory: Path, stem: str) -> list[Path]:
    """``source``'s lines dealt into ``parts`` files (one per run: single-use tokens)."""
    lines = source.read_text().split()
    files = []
    for n in range(parts):
        path = directory / f"{stem}-{n}.txt"
        path.write_text("\n".join(lines[n::parts]) + "\n")
        files.append(path)
    return files


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}


def users_and_sessions() -> tuple[int, int]:
    """Accounts in the database and live SSO sessions in Redis, counted."""
    with psycopg.connect(DATABASE) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()[0]  # type: ignore[index]
    client = redis.Redis.from_url(REDIS)
    sessions = sum(1 for _ in client.scan_iter(match="bench:sess:*", count=10_000))
    return int(users), sessions


def scaled(app, cases):  # type: ignore[no-untyped-def]
    """The same endpoints with few and with SCALE users and live sessions,
    then one user's 1,000 sessions revoked, timed."""
    from bench import scale as bulk
    from idp.db import get_session
    from idp.models import User

    rows: list[tuple[str, str, dict[str, float]]] = []
    with app.app_context():
        ids = [i for (i,) in get_session().query(User.id).order_by(User.id).limit(1000)]
    bulk.add_sessions(app, ids)
    users, sessions = users_and_sessions()
    for name, run in cases:
        rows.append((f"{users:,} users, {sessions:,} sessions", name, run()))
    print(f"scale: adding {SCALE:,} users (COPY) and {SCALE:,} sessions", flush=True)
    seconds_users = bulk.add_users(DATABASE, SCALE)
    settle_database()
    with app.app_context():
        many = [i for (i,) in get_session().query(User.id).order_by(User.id.desc()).limit(SCALE)]
    seconds_sessions = bulk.add_sessions(app, many)
    print(f"  seeded in {seconds_users:.0f} s (users) and {seconds_sessions:.0f} s (sessions)")
    label = f"{users + SCALE:,} users, {sessions + SCALE:,} sessions"
    for name, run in cases:
        outcome = run()
        rows.append((label, name, outcome))
        print(f"{label}: {name:32} {outcome['rps']:9.1f}/s  p99 {outcome['p99']:7.2f} ms")
    # One user with 1,000 sessions, revoked while everyone else's stay.
    victim = ids[-1]  # an account without grants: the time is the sessions'
    bulk.add_sessions(app, [victim], per_user=999)
    before = bulk.count_sessions(app)
    seconds, ended = bulk.revoke_timed(app, victim)
    after = bulk.count_sessions(app)
    print(
        f"revoked {ended} sessions of one user in {seconds * 1000:.0f} ms; others: {before - ended:,} before, {after:,} after"
    )
    rows.append(
        (
            label,
            f"revoke 1 user's {ended} sessions",
            {"seconds": seconds, "others_before": before - ended, "others_after": after},
        )
    )
    return rows


def report(
    results: list[tuple[str, dict[str, float]]], scale: list, compared: list, users: int
) -> None:  # type: ignore[type-arg]
    cpu = os.cpu_count()
    lines = [
        "# Benchmark results",
        "",
        f"IdP: {SERVER} {WORKERS} workers ({WORKER_CLASS if SERVER == 'gunicorn' else 'wsgi'}, {THREADS} threads), PostgreSQL,"
        f" Redis; wrk -t2 -c{CONNECTIONS} -d{SECONDS}s; {cpu} CPUs; users in the table"
        f" before the scale phase: {users:,}.",
        "",
        "| Endpoint | requests/s | p50 (ms) | p99 (ms) | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results:
        lines.append(
            f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {int(r['errors'])} |"
        )
    if compared:
        lines += [
            "",
            "## Side by side with oidc-provider (same workers, clients and JWT access tokens)",
            "",
            "| Endpoint | ours req/s | peer req/s | ours/peer | ours p99 (ms) | peer p99 (ms) | errors (ours/peer) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, ours, theirs in compared:
            lines.append(
                f"| {name} | {ours['rps']:.0f} | {theirs['rps']:.0f} | {ours['rps'] / theirs['rps']:.2f}"
                f" | {ours['p99']:.2f} | {theirs['p99']:.2f} | {int(ours['errors'])}/{int(theirs['errors'])} |"
            )
    if scale:
        lines += [
            "",
            "## Scale",
            "",
            "| Data | Endpoint | requests/s | p50 (ms) | p99 (ms) | errors |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for data, name, r in scale:
            if "seconds" in r:
                lines.append(
                    f"| {data} | {name} | {r['seconds'] * 1000:.0f} ms | other sessions"
                    f" {int(r['others_before']):,} → {int(r['others_after']):,} | | |"
                )
            else:
                lines.append(
                    f"| {data} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f}"
                    f" | {int(r['errors'])} |"
                )
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "endpoints": dict(results),
                "side_by_side": {name: {"ours": o, "peer": p} for name, o, p in compared},
                "scale": [{"data": d, "endpoint": n, **r} for d, n, r in scale],
            },
            indent=2,
        )
    )
    chart(results, compared)
    print(f"\nwritten: {RESULTS / 'results.md'}, {RESULTS / 'results.png'}")


def chart(results: list[tuple[str, dict[str, float]]], compared: list) -> None:  # type: ignore[type-arg]
    """Requests/s and p99 per endpoint and, with the peer measured, ours/peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _ in results]
    panels = 3 if compared else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5))
    left, right = axes[0], axes[1]
    left.barh(names, [r["rps"] for _, r in results], color=GOOD)
    left.set_xscale("log")
    left.set_xlabel("requests (logins) per second, log scale — more is better")
    # The 50 ms is a request's; a login's p99 is of four requests in a row.
    right.barh(
        names,
        [r["p99"] for _, r in results],
        color=[OTHER if n == LOGIN else GOOD if r["p99"] < 50 else BAD for n, r in results],
    )
    for y, (name, r) in enumerate(results):
        note = " (a whole login)" if name == LOGIN else ""
        right.text(r["p99"], y, f" {r['p99']:.1f}{note}", va="center", fontsize=8)
    right.set_yticklabels([])
    right.set_xscale("log")
    right.set_xlim(right=max(r["p99"] for _, r in results) * 6)  # room for the labels
    right.axvline(50, color="#5b6475", linestyle="--", linewidth=1)
    right.set_xlabel("p99 latency, ms, log scale (dashed: 50 ms) — less is better")
    left.invert_yaxis()
    right.invert_yaxis()
    if compared:
        ratio = axes[2]
        labels = [name for name, _, _ in compared]
        values = [ours["rps"] / theirs["rps"] for _, ours, theirs in compared]
        # The opaque-token row is for reference: the peer signs one token fewer.
        colours = [
            OTHER if name == CODE_FLOW_OPAQUE else GOOD if v >= 1 else BAD
            for (name, _, _), v in zip(compared, values, strict=True)
        ]
        ratio.barh(labels, values, color=colours)
        ratio.axvline(1.0, color="#1d2433", linewidth=1)
        for y, value in enumerate(values):
            ratio.text(value, y, f" {value:.2f}×", va="center")
        ratio.set_xlim(0, max(values) * 1.25)  # room for the labels
        ratio.set_xlabel("ours / oidc-provider, requests/s\n(≥ 1: ahead; grey: for reference)")
        ratio.invert_yaxis()
    fig.suptitle(f"idp: {WORKERS} workers, {CONNECTIONS} connections")
    fig.tight_layout()
    fig.savefig(RESULTS / "results.png", dpi=110)


if __name__ == "__main__":
    main()
