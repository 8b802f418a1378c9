"""A real Celery worker subprocess for the tests, consuming this run's queue on the Redis broker.

The worker runs the test settings against pytest-django's test database (so tests using it need
`@pytest.mark.django_db(transaction=True)`: the worker only sees committed rows), with the same
MEDIA_ROOT as the test, and sends email to the SMTP sink passed in.

Why not Celery's `celery.contrib.testing.worker.start_worker`: it runs the worker in a thread of
the test process (solo pool, the test's settings and Django state), which cannot do what these
tests are for. They kill the worker with SIGKILL mid-task and start it again, to prove Redis
redelivers the unacknowledged task (orders/tests/test_emails.py); they kill one prefork pool
child, to prove `task_reject_on_worker_lost` requeues at once; and they run the command
production runs (`celery -A storefront worker`, prefork, settings from the environment). A
thread can be neither killed nor restarted, and has no pool child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CeleryWorker:
    env: dict[str, str]
    log_path: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def start(self, timeout: float = 60.0) -> None:
        """Start the worker and wait until it reports ready (its log says so)."""
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a SIGKILL test kills the main process and pool children.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"celery worker exited with {self.proc.returncode}:\n{self.log()}"
                )
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b" ready." in log.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"celery worker not ready within {timeout:.0f}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop it (SIGTERM: warm shutdown; SIGKILL: dies mid-task, children included)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if sig == signal.SIGKILL:
            # The prefork children would otherwise finish their task as orphans.
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextmanager
def running_worker(
    log_path: Path,
    *,
    # django-environ's name for Django's in-memory (locmem) backend: nothing leaves the worker.
    email_url: str = "memorymail://",
    media_root: Path | None = None,
    extra_env: dict[str, str] | None = None,
    concurrency: int = 1,
) -> Iterator[CeleryWorker]:
    """Start a worker for this test run's queue; tasks sent meanwhile go to it, not eagerly."""
    from django.conf import settings

    from storefront.celery import app
    from tests.database_urls import pooled_database_url

    env = dict(os.environ)
    env.update(
        {
            "STOREFRONT_ENV": "test",
            "DATABASE_URL": pooled_database_url(),
            "CELERY_BROKER_URL": settings.STOREFRONT_BROKER_URL,
            "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "EMAIL_URL": email_url,
            "MEDIA_ROOT": str(media_root or settings.MEDIA_ROOT),
            "PRIVATE_MEDIA_ROOT": str(settings.PRIVATE_MEDIA_ROOT),
            # Its metrics land where this test process's /metrics reads them.
            "STOREFRONT_METRICS_DIR": settings.STOREFRONT_METRICS_DIR,
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    )
    if settings.PGBOUNCER_URL:
        # Run through PgBouncer (make test-pgbouncer): the worker's queries go through it too;
        # its DATABASE_URL names the primary itself (the import's session lock).
        from tests.database_urls import direct_database_url

        env["PGBOUNCER_URL"] = pooled_database_url()
        env["DATABASE_URL"] = direct_database_url()
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "storefront",
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    worker = CeleryWorker(env=env, log_path=log_path, args=args)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        worker.start()
        yield worker
    finally:
        app.conf.task_always_eager = eager
        worker.stop()
