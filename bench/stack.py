# ruff: noqa: SIM105, S310
"""Helpers shared by `make bench` (bench/run.py) and `make loadtest` (loadtest/run.py).

Everything here runs on loopback with throwaway state:

- `Database`: a PostgreSQL database of our own (`bench_*` / `loadtest_*`), created fresh and
  dropped at the end, migrated and seeded with `storefront seed`;
- `Gunicorn`, `Nginx`, `Runserver`: the stack's processes on free loopback ports, each started
  in its own process group (start_new_session) so that stopping it stops its children too;
- `Processes`: a registry that stops every process still running at exit, on Ctrl-C and on
  SIGTERM (try/finally in the callers, plus atexit and signal handlers here).

The ideas are those of tests/stack/conftest.py (free ports, a throwaway seeded database, the
real deploy/gunicorn.conf.py and deploy/nginx rendered by scripts/render_nginx.py).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
GUNICORN_CONF = REPO_ROOT / "deploy" / "gunicorn.conf.py"
RENDER_NGINX = REPO_ROOT / "scripts" / "render_nginx.py"
PYTHON = sys.executable
# Variables of the outer environment that must not leak into the servers we start.
ISOLATED_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CACHE_URL",
    "STATICFILES_STORAGE",
    "DJANGO_DEBUG",
    "DJANGO_SETTINGS_MODULE",
    "STOREFRONT_VAR_DIR",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "CELERY_BROKER_URL",
    "STOREFRONT_CACHE_KEY_PREFIX",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- process registry ---------------------------------------------------------------------------


class Processes:
    """Every process group we started; `stop_all` ends the ones still running."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        # Ctrl-C: KeyboardInterrupt unwinds the callers' try/finally blocks; atexit backs them up.

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_all()
        raise SystemExit(128 + signum)

    def spawn(self, args: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: killpg reaches its children
            )
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        # Stragglers of the group (workers whose master died first).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc, wait=5)


PROCESSES = Processes()


# --- database -----------------------------------------------------------------------------------


def postgres_admin_url() -> str:
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    return f"postgresql://{user}@{host}:{port}/postgres"


@dataclass
class Database:
    """A throwaway PostgreSQL database: `create()`, `prepare()` (migrate + seed), `drop()`."""

    name: str
    admin_url: str = field(default_factory=postgres_admin_url)

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(("postgres", parts.netloc, f"/{self.name}", "", ""))

    def _admin(self, statement: str) -> None:
        import psycopg
        from psycopg import sql

        query = sql.SQL(statement).format(sql.Identifier(self.name))
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(query)

    def create(self) -> Database:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._admin("CREATE DATABASE {}")
        return self

    def drop(self) -> None:
        try:
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        except Exception as exc:
            log(f"could not drop database {self.name}: {exc}")

    def size_bytes(self) -> int:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute("SELECT pg_database_size(%s)", (self.name,)).fetchone()[0]


def storefront_command(args: list[str], env: dict[str, str], timeout: float = 900) -> str:
    """Run `storefront ARGS` (python -m storefront) and return its output; raise on failure."""
    done = subprocess.run(
        [PYTHON, "-m", "storefront", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"`storefront {' '.join(args)}` exited with {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


# --- environment --------------------------------------------------------------------------------


def seed(env: dict[str, str], *, products: int, orders: int, users: int) -> str:
    """`storefront seed` with these sizes and the fixed seed 1 (the same shop every run)."""
    args = ["seed", "--products", str(products), "--orders", str(orders)]
    return storefront_command([*args, "--users", str(users), "--seed", "1"], env, timeout=1800)


def app_env(
    *,
    database_url: str,
    var_dir: Path,
    static_root: Path,
    redis_url: str | None,
    cache_prefix: str,
    settings_module: str = "storefront.settings",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every storefront process of one stack (no leaks from outside)."""
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith(("GUNICORN_", "NGINX_", "LOADTEST_"))}
    python_path = [str(BENCH_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        python_path.append(env["PYTHONPATH"])
    env.update(
        STOREFRONT_ENV="dev",
        DJANGO_SETTINGS_MODULE=settings_module,
        PYTHONPATH=os.pathsep.join(python_path),
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


def redis_available(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def redis_delete_prefix(url: str, prefix: str) -> int:
    """Delete every key of ours (prefix `prefix*`) from the shared Redis; returns the count."""
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


# --- servers ------------------------------------------------------------------------------------


def wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[:3]} exited with {proc.returncode} before serving:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(
        f"{url} did not answer within {timeout:.0f}s:\n{log_path.read_text()[-3000:]}"
    )


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path
    kind: str

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
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int | None = None,
    worker_class: str = "sync",
    threads: int = 1,
    wsgi: str = "storefront.wsgi",
    extra_env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    genv = dict(env)
    genv.update(
        GUNICORN_BIND=f"127.0.0.1:{port}",
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
    proc = PROCESSES.spawn(
        [PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONF), wsgi], env=genv, log_path=log_path
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc, log_path)
    return Server(proc=proc, url=url, log_path=log_path, kind="gunicorn")


def start_runserver(env: dict[str, str], log_path: Path) -> Server:
    port = free_port()
    proc = PROCESSES.spawn(
        [PYTHON, "-m", "storefront", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        log_path=log_path,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc, log_path)
    return Server(proc=proc, url=url, log_path=log_path, kind="runserver")


def render_nginx(
    out: Path, upstream: str, static_root: Path, media_root: Path, **variables: str
) -> int:
    """Render deploy/nginx into OUT with scripts/render_nginx.py; returns the HTTP port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NGINX_")}
    port = free_port()
    env.update(
        NGINX_LISTEN_HTTP=f"127.0.0.1:{port}",
        NGINX_LISTEN_HTTPS=f"127.0.0.1:{free_port()}",
        NGINX_UPSTREAM_SOCKETS=upstream,
        NGINX_STATIC_ROOT=str(static_root),
        NGINX_MEDIA_ROOT=str(media_root),
        NGINX_TLS_CERT=str(out.parent / "tls" / "cert.pem"),
        NGINX_TLS_KEY=str(out.parent / "tls" / "key.pem"),
    )
    env.update(variables)
    subprocess.run(
        [PYTHON, str(RENDER_NGINX), str(out)], env=env, check=True, capture_output=True, text=True
    )
    return port


def make_cert(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "cert.pem").exists():
        return
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost",
            "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def start_nginx(
    prefix: Path,
    upstream_url: str,
    *,
    static_root: Path,
    media_root: Path,
    variables: dict[str, str] | None = None,
) -> Server:
    """nginx from deploy/nginx (rendered into PREFIX) in front of the gunicorn at upstream_url.

    The per-address rate and connection limits are raised far above what the load generator
    sends (every request comes from 127.0.0.1): the benchmark measures throughput, not the
    limiter, which would otherwise answer 429 to nearly everything.
    """
    make_cert(prefix.parent / "tls")
    upstream = urlsplit(upstream_url).netloc
    media_root.mkdir(parents=True, exist_ok=True)
    values = {
        "NGINX_RATE_GENERAL": "100000r/s",
        "NGINX_RATE_API": "100000r/s",
        "NGINX_CONN_PER_IP": "10000",
    }
    values.update(variables or {})
    port = render_nginx(prefix, upstream, static_root, media_root, **values)
    log_path = prefix / "logs" / "error.log"
    conf = prefix / "nginx.conf"
    args = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(log_path)]
    check = subprocess.run([*args, "-t", "-q"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
    proc = PROCESSES.spawn(
        [*args, "-g", "daemon off;"], env=dict(os.environ), log_path=prefix / "nginx.out"
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/nginx_status", proc, log_path)
    return Server(proc=proc, url=url, log_path=log_path, kind="nginx")


def fetch(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
