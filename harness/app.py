"""Storefront's own processes: its environment, management commands, gunicorn, runserver.

gunicorn always runs with the real deploy/gunicorn.conf.py (every value from GUNICORN_*).
Nothing of the outer environment that would point a server at shared state leaks in
(`isolated_environ`): each stack has its own database, var directory and cache key prefix.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from harness.processes import HOST, PROCESSES, PYTHON, REPO_ROOT, free_port, log, run, wait_http

GUNICORN_CONF = REPO_ROOT / "deploy" / "gunicorn.conf.py"
# Variables of the outer environment that must not leak into the servers we start.
ISOLATED_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CACHE_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_PASSWORD",
    "STATICFILES_STORAGE",
    "DJANGO_DEBUG",
    "DJANGO_SETTINGS_MODULE",
    "STOREFRONT_VAR_DIR",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "CELERY_BROKER_URL",
    "STOREFRONT_CACHE_KEY_PREFIX",
    # Each stack's processes share their own metrics directory (default: under the var dir).
    "PROMETHEUS_MULTIPROC_DIR",
    "STOREFRONT_METRICS_DIR",
    "STOREFRONT_METRICS_GROUP",
    "STOREFRONT_METRICS_AUTO_DIR",
}


def isolated_environ(*strip_prefixes: str) -> dict[str, str]:
    """os.environ without ISOLATED_VARIABLES nor any variable starting with `strip_prefixes`."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ISOLATED_VARIABLES and not (strip_prefixes and k.startswith(strip_prefixes))
    }


def app_env(
    *,
    database_url: str,
    var_dir: Path,
    static_root: Path,
    redis_url: str | None,
    cache_prefix: str,
    settings_module: str = "storefront.settings",
    python_path: tuple[Path, ...] = (),
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every storefront process of one stack (no leaks from outside).

    `python_path` goes first on PYTHONPATH (a settings module outside the package)."""
    env = isolated_environ("GUNICORN_", "NGINX_", "LOADTEST_")
    paths = [str(p) for p in python_path] + [str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        STOREFRONT_ENV="dev",
        DJANGO_SETTINGS_MODULE=settings_module,
        PYTHONPATH=os.pathsep.join(paths),
        DATABASE_URL=database_url,
        STOREFRONT_VAR_DIR=str(var_dir),
        STATIC_ROOT=str(static_root),
        MEDIA_ROOT=str(var_dir / "media"),
        PRIVATE_MEDIA_ROOT=str(var_dir / "private"),
        # No Celery worker runs: tasks (order emails) run in the request, emails go nowhere.
        CELERY_TASK_ALWAYS_EAGER="true",
        EMAIL_URL="dummymail://",
        # Our own key prefix in the shared Redis: nothing collides with other users of it.
        STOREFRONT_CACHE_KEY_PREFIX=cache_prefix,
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    if extra:
        env.update(extra)
    return env


def storefront_command(args: list[str], env: dict[str, str], timeout: float = 900) -> str:
    """Run `storefront ARGS` (python -m storefront) and return its output; RuntimeError with
    the output's end when it fails or outlasts `timeout` seconds."""
    try:
        done = run([PYTHON, "-m", "storefront", *args], timeout=timeout, env=env,
                   start_new_session=True)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"`storefront {' '.join(args)}` took longer than {timeout:.0f}s"
        ) from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"`storefront {' '.join(args)}` exited with {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


def seed(env: dict[str, str], *, products: int, orders: int, users: int, seed: int = 1) -> str:
    """`storefront seed` with these sizes and a fixed seed (the same shop every run)."""
    args = ["seed", "--products", str(products), "--orders", str(orders), "--users", str(users)]
    return storefront_command([*args, "--seed", str(seed)], env, timeout=1800)


def redis_available(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def redis_delete_prefix(url: str, prefix: str) -> int:
    """Delete every key containing `prefix` from the shared Redis; returns the count."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        deleted = 0
        batch = []
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
        return deleted
    except Exception as exc:
        log(f"could not clean Redis keys {prefix}*: {exc}")
        return 0


@dataclass
class Server:
    """A server process of ours (gunicorn, runserver, nginx) answering on `url`."""

    proc: subprocess.Popen
    url: str
    log_path: Path
    kind: str

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    def stop(self) -> None:
        # gunicorn and runserver stop on SIGTERM; nginx stops gracefully on SIGQUIT.
        PROCESSES.stop(self.proc, signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)

    def pids(self) -> list[int]:
        """The server's processes: for gunicorn and nginx the workers (not the master)."""
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            children = parent.children(recursive=True)
        except psutil.Error:
            return []
        return [c.pid for c in children] or [parent.pid]


def start_gunicorn(
    env: dict[str, str], log_path: Path, *, wsgi: str = "storefront.wsgi"
) -> subprocess.Popen:
    """gunicorn with deploy/gunicorn.conf.py, bound where env's GUNICORN_BIND says (a port or
    a unix socket), logging to `log_path`; not waited for."""
    args = [PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONF), wsgi]
    return PROCESSES.spawn(args, env=env, log_path=log_path)


def serve_gunicorn(
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int | None = None,
    worker_class: str = "sync",
    threads: int = 1,
    wsgi: str = "storefront.wsgi",
    extra_env: dict[str, str] | None = None,
) -> Server:
    """gunicorn on a free loopback port, for measuring: no worker recycling, short graceful
    stop; waits until /healthz answers."""
    port = free_port()
    genv = dict(env)
    genv.update(
        GUNICORN_BIND=f"{HOST}:{port}",
        GUNICORN_WORKER_CLASS=worker_class,
        GUNICORN_THREADS=str(threads),
        GUNICORN_GRACEFUL_TIMEOUT="3",
        # Worker recycling every ~1000 requests would restart workers mid-measurement.
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    if workers:
        genv["GUNICORN_WORKERS"] = str(workers)
    if worker_class == "gevent":
        # gevent must patch before Django loads (no preload in the master), and each request
        # runs in a new greenlet: persistent connections would pile up, one per greenlet.
        genv.update(GUNICORN_PRELOAD="false", DATABASE_CONN_MAX_AGE="0")
    genv.update(extra_env or {})
    proc = start_gunicorn(genv, log_path, wsgi=wsgi)
    url = f"http://{HOST}:{port}"
    wait_http(f"{url}/healthz", proc, log_path)
    return Server(proc=proc, url=url, log_path=log_path, kind="gunicorn")


def start_runserver(env: dict[str, str], log_path: Path) -> Server:
    """Django's development server (no autoreload) on a free loopback port."""
    port = free_port()
    proc = PROCESSES.spawn(
        [PYTHON, "-m", "storefront", "runserver", f"{HOST}:{port}", "--noreload"],
        env=env,
        log_path=log_path,
    )
    url = f"http://{HOST}:{port}"
    wait_http(f"{url}/healthz", proc, log_path)
    return Server(proc=proc, url=url, log_path=log_path, kind="runserver")
