"""The stack under attack, as production runs it (gunicorn with STOREFRONT_ENV=production behind
nginx's production profile, on loopback, started by harness), and clients for it."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import Client, Database, log, run

REDIS_URL = os.environ.get("SECURITY_REDIS_URL", os.environ.get("REDIS_URL", "")) or (
    "redis://127.0.0.1:6379/0"
)
HOST = "localhost"  # the name the scanners use; ALLOWED_HOSTS has it


@dataclass
class SecurityStack:
    env: dict[str, str]
    app_url: str  # gunicorn, direct (setup and app-level fuzzing)
    http_port: int
    https_port: int
    nginx_prefix: Path
    cache_prefix: str

    @property
    def https_url(self) -> str:
        return f"https://{HOST}:{self.https_port}"


def start_stack(workdir: Path, run_id: str) -> tuple[SecurityStack, Database]:
    db = Database(f"security_{os.getpid()}").create()
    env = harness.app_env(
        database_url=db.url,
        var_dir=workdir / "var",
        static_root=workdir / "static",
        redis_url=REDIS_URL,
        cache_prefix=run_id,
    )
    log("migrating, seeding (200 products, 300 orders, 40 shoppers), collecting static files")
    harness.storefront_command(["migrate", "--noinput", "--verbosity", "0"], env)
    harness.seed(env, products=200, orders=300, users=40)
    harness.storefront_command(["collectstatic", "--noinput", "--verbosity", "0"], env)
    production = dict(env)
    production.update(
        STOREFRONT_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        # Only nginx reaches this gunicorn (and the direct checks below, which send what nginx
        # sends): trust its client address and scheme headers.
        STOREFRONT_PROXY_CLIENT_IP_HEADER="X-Real-IP",
        STOREFRONT_BEHIND_PROXY="1",
    )
    gunicorn = harness.serve_gunicorn(production, workdir / "gunicorn.log", workers=3)
    # The production profile and its rate limits, with the self-signed certificate `make run`
    # makes (subjectAltName, 825 days).
    nginx = harness.start_nginx(
        workdir / "nginx",
        [gunicorn.netloc],
        static_root=workdir / "static",
        media_root=workdir / "var" / "media",
        variables={"NGINX_PROFILE": "production", "NGINX_SERVER_NAME": HOST},
        ready_path="/nginx-healthz",
    )
    log(
        f"stack: nginx (production profile) http :{nginx.http_port} https :{nginx.https_port}"
        f" → {gunicorn.url}"
    )
    return (
        SecurityStack(
            env=production,
            app_url=gunicorn.url,
            http_port=nginx.http_port,
            https_port=nginx.https_port,
            nginx_prefix=nginx.prefix,
            cache_prefix=run_id,
        ),
        db,
    )


def app_client(sec: SecurityStack) -> Client:
    """gunicorn directly, with the headers nginx would add (for setup and app-level fuzzing)."""
    return Client(
        sec.app_url,
        headers={"Host": HOST, "X-Forwarded-Proto": "https", "X-Real-IP": "127.0.0.1"},
        origin=f"https://{HOST}",
    )


def django_shell(sec: SecurityStack, code: str) -> str:
    done = run([sys.executable, "-m", "storefront", "shell", "-c", code], timeout=120, env=sec.env)
    if done.returncode != 0:
        raise RuntimeError(f"storefront shell failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def api_token(sec: SecurityStack, username: str, password: str) -> str:
    status, _, body = app_client(sec).request(
        "POST",
        "/api/auth/token/",
        body=json.dumps({"username": username, "password": password}),
        headers={"Content-Type": "application/json"},
    )
    if status not in (200, 201):
        raise RuntimeError(f"token for {username}: {status} {body[:200]!r}")
    return json.loads(body)["token"]
