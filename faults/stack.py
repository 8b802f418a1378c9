"""The stack under fault: what `make run` starts (harness/served.py), but with each process ours
to signal, kill and start again.

`make run` (and harness's `served_stack`) run everything under honcho, which stops the whole
stack when one process exits: right for a terminal, useless for "kill -9 one instance". So the
same parts are started here one by one from harness/: nginx rendered from deploy/nginx in front
of two gunicorn instances (deploy/gunicorn.conf.py) on unix sockets, a Celery worker and beat,
email to a real SMTP sink. PostgreSQL and Redis are throwaway servers of our own on free ports
(harness/pg_cluster.py, harness/cache_servers.py): the faults stop, hang and starve them, which
must never happen to the machine's shared ones. The app connects as a plain (non-superuser)
role, so `max_connections` binds it as it would in production.

gunicorn serves `faults.slow_wsgi`: the real app plus one path, /_faults/sleep/<seconds>, the
request that runs past the timeout (nothing else differs).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

import harness
from harness import PROCESSES, PYTHON, log
from harness.cache_servers import RedisServer, running_redis
from harness.pg_cluster import PostgresCluster, running_cluster
from harness.smtp import SmtpSink

# nginx's per-address limits off: all load comes from 127.0.0.1.
NO_LIMITS = {
    "NGINX_RATE_AUTH": "100000r/s",
    "NGINX_RATE_API": "100000r/s",
    "NGINX_RATE_GENERAL": "100000r/s",
    "NGINX_CONN_PER_IP": "10000",
    # Every request reaches gunicorn: the faults are in the app's processes, not nginx's cache.
    "NGINX_MICROCACHE": "off",
}
SEED = {"products": 300, "orders": 200, "users": 30}
CUSTOMER_PASSWORD = "faults-Pass-123"  # a throwaway account on a throwaway stack
STAFF_USERNAME = "faults-staff"  # a superuser: staff pages (the CSV import) for the disk scenario
MAX_CONNECTIONS = 60


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def get_unix(path: Path, url: str, timeout: float = 5) -> int:
    conn = UnixHTTPConnection(str(path), timeout)
    try:
        conn.request("GET", url, headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class WebInstance:
    """One gunicorn instance (master and workers) on a unix socket."""

    number: int
    socket_path: Path
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def upstream(self) -> str:
        return f"unix:{self.socket_path}"

    def start(self, env: dict[str, str], timeout: float = 60) -> None:
        self.socket_path.unlink(missing_ok=True)
        env = {
            **env,
            "GUNICORN_BIND": self.upstream,
            "STOREFRONT_METRICS_GROUP": f"web{self.number}",
        }
        self.proc = harness.start_gunicorn(env, self.log_path, wsgi="faults.slow_wsgi")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn {self.number} exited:\n{harness.processes.tail(self.log_path)}"
                )
            try:
                if get_unix(self.socket_path, "/healthz") == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn {self.number} did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None:
            PROCESSES.stop(self.proc, signal.SIGTERM, wait=35)
            self.proc = None

    @property
    def master_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self.master_pid).children()]
        except psutil.Error:
            return []

    def wait_workers(self, count: int, timeout: float = 30) -> bool:
        """Whether `count` workers run (after a reload) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.worker_pids()) == count:
                return True
            time.sleep(0.1)
        return False


class RestartableSmtp:
    """The SMTP sink on a fixed port that can be stopped (connections refused) and started."""

    def __init__(self) -> None:
        self.sink = SmtpSink(port=harness.free_port())
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname=self.sink.host, port=self.sink.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@dataclass
class Process:
    """A Celery worker or beat: started from `args`, ready when its log says `ready_text`."""

    name: str
    args: list[str]
    log_path: Path
    ready_text: str
    proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str], timeout: float = 60) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = PROCESSES.spawn(self.args, env=env, log_path=self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{harness.processes.tail(self.log_path)}")
            with self.log_path.open("rb") as out:
                out.seek(offset)
                if self.ready_text.encode() in out.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s")

    def kill(self, *, group: bool = True) -> None:
        """SIGKILL to its whole process group (prefork children die mid-task too), or to its
        main process alone (`kill -9 PID`: the pool children finish their task, then exit)."""
        if self.proc is not None and self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            PROCESSES.forget(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            PROCESSES.stop(self.proc, signal.SIGTERM, wait=20)


@dataclass
class FaultStack:
    workdir: Path
    cluster: PostgresCluster
    redis: RedisServer
    smtp: RestartableSmtp
    env: dict[str, str]
    web: list[WebInstance]
    nginx: harness.Nginx
    worker: Process
    beat: Process
    database_url: str
    slugs: list[str] = field(default_factory=list)
    stocked_ids: list[int] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    web_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def var_dir(self) -> Path:
        return Path(self.env["STOREFRONT_VAR_DIR"])

    def web_env(self) -> dict[str, str]:
        return {**self.env, **self.web_overrides}

    def restart_web(self, overrides: dict[str, str] | None = None) -> None:
        """Both gunicorn instances again with these GUNICORN_* overrides (one after the other,
        outside any measurement); nothing to do when they already run with them."""
        overrides = dict(overrides or {})
        running = all(w.proc is not None and w.proc.poll() is None for w in self.web)
        if running and overrides == self.web_overrides:
            return
        self.web_overrides = overrides
        for instance in self.web:
            instance.stop()
            instance.start(self.web_env())
        self.warm()

    def warm(self, paths: list[str] | None = None) -> None:
        """Each page a few times through nginx: fresh workers compile their templates and open
        their database connections before a measurement, not during it."""
        paths = paths or ["/", "/products/", *(f"/products/{s}/" for s in self.slugs[:24])]
        for _ in range(3):
            for path in paths:
                with contextlib.suppress(OSError):
                    harness.fetch(f"{self.url}{path}", headers={"Host": "localhost"}, timeout=10)

    def ensure_web(self) -> None:
        """Start any instance that is not running (after a kill)."""
        for instance in self.web:
            if instance.proc is None or instance.proc.poll() is not None:
                if instance.proc is not None:
                    PROCESSES.forget(instance.proc)
                instance.start(self.web_env())

    def command(self, *args: str, timeout: float = 300) -> str:
        return harness.storefront_command(list(args), self.env, timeout=timeout)

    def wait_ready(self, timeout: float = 60) -> bool:
        """Whether /readyz answers 200 through nginx within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if harness.fetch(f"{self.url}/readyz", timeout=5)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.5)
        return False


def _catalogue(env: dict[str, str], count: int = 40) -> tuple[list[str], list[int]]:
    """Slugs of `count` active products, and the ids of 4 of them given stock that will not
    run out (the checkout scenarios buy them)."""
    out = harness.storefront_command(
        ["shell", "-c",
         "import json\n"
         "from storefront.catalog.models import Product\n"
         "rows = list(Product.objects.active().order_by('id')"
         f".values_list('id', 'slug')[:{count}])\n"
         "ids = [i for i, _ in rows[:4]]\n"
         "Product.objects.filter(id__in=ids).update(stock=10**6)\n"
         "print('JSON' + json.dumps({'slugs': [s for _, s in rows], 'ids': ids}))"],
        env, timeout=120,
    )  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("JSON"))
    data = json.loads(line[4:])
    return data["slugs"], data["ids"]


def _make_customers(env: dict[str, str], count: int) -> list[str]:
    names = [f"faults{i}" for i in range(count)]
    harness.storefront_command(
        ["shell", "-c",
         "from storefront.accounts.models import User\n"
         f"for n in {names!r}:\n"
         "    User.objects.filter(username=n).exists() or User.objects.create_user("
         f"username=n, email=n + '@example.com', password={CUSTOMER_PASSWORD!r})\n"
         f"User.objects.filter(username={STAFF_USERNAME!r}).exists() or "
         f"User.objects.create_superuser(username={STAFF_USERNAME!r}, "
         f"email='faults-staff@example.com', password={CUSTOMER_PASSWORD!r})"],
        env, timeout=120,
    )  # fmt: skip
    return names


# Seconds between two tries of an email at most in this stack (EMAIL_RETRY_BACKOFF_MAX).
SMTP_RETRY_BACKOFF_MAX = 20


@contextmanager
def fault_stack(workdir: Path, run_id: str) -> Iterator[FaultStack]:
    """Everything started, seeded and answering; stopped when the block ends."""
    with ExitStack() as stack:
        log("starting a PostgreSQL cluster and a Redis of our own")
        cluster = stack.enter_context(running_cluster(max_connections=MAX_CONNECTIONS))
        database_url = cluster.create_database("storefront", owner="storefront")
        # The broker's Redis persists (settings.py: REDIS_URL is the durable one).
        redis = stack.enter_context(
            running_redis("--appendonly", "yes", "--appendfsync", "everysec")
        )
        smtp = RestartableSmtp()
        smtp.start()
        stack.callback(smtp.stop)
        var_dir = workdir / "var"
        static_root = workdir / "static"
        env = harness.app_env(
            database_url=database_url,
            var_dir=var_dir,
            static_root=static_root,
            redis_url=redis.url,
            cache_prefix=run_id,
            extra={
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "CELERY_QUEUE": f"storefront-{run_id}",
                "EMAIL_URL": f"smtp://{smtp.sink.host}:{smtp.sink.port}",
                "STOREFRONT_BEHIND_PROXY": "1",
                "LOG_FORMAT": "text",
                "GUNICORN_WORKERS": "2",
                "GUNICORN_GRACEFUL_TIMEOUT": "10",
                # Retries of an email after an SMTP error wait at most 20 s (production: 600 s),
                # so smtp_down's emails arrive within a bounded time after SMTP returns; the
                # retry path is the same, only its cap is shorter.
                "EMAIL_RETRY_BACKOFF_MAX": str(SMTP_RETRY_BACKOFF_MAX),
                "STOREFRONT_METRICS_DIR": str(var_dir / "metrics"),
            },
        )
        log("migrating, seeding, collecting static files")
        harness.storefront_command(["migrate", "--noinput"], env, timeout=300)
        harness.seed(env, **SEED)
        harness.storefront_command(["collectstatic", "--noinput", "--verbosity", "0"], env)
        slugs, stocked = _catalogue(env)
        customers = _make_customers(env, 8)
        run_dir = var_dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        web = [
            WebInstance(n, run_dir / f"gunicorn-{n}.sock", workdir / f"gunicorn-{n}.log")
            for n in (1, 2)
        ]
        for instance in web:
            stack.callback(instance.stop)
            instance.start(env)
        nginx = harness.start_nginx(
            workdir / "nginx",
            [w.upstream for w in web],
            static_root=static_root,
            media_root=var_dir / "media",
            variables=NO_LIMITS,
        )
        stack.callback(nginx.stop)
        celery = [PYTHON, "-m", "celery", "-A", "storefront"]
        worker = Process(
            "celery worker",
            [*celery, "worker", "--loglevel=INFO", "--concurrency=2"],
            workdir / "celery-worker.log",
            " ready.",
        )
        beat = Process(
            "celery beat",
            [*celery, "beat", "--loglevel=INFO", "-s", str(var_dir / "celerybeat-schedule")],
            workdir / "celery-beat.log",
            "beat: Starting",
        )
        worker.start(env)
        stack.callback(worker.stop)
        beat.start(env)
        stack.callback(beat.stop)
        fs = FaultStack(
            workdir=workdir,
            cluster=cluster,
            redis=redis,
            smtp=smtp,
            env=env,
            web=web,
            nginx=nginx,
            worker=worker,
            beat=beat,
            database_url=database_url,
            slugs=slugs,
            stocked_ids=stocked,
            customers=customers,
        )
        if not fs.wait_ready(60):
            raise RuntimeError("the stack never became ready (/readyz)")
        log(f"stack ready on {nginx.url}")
        yield fs
