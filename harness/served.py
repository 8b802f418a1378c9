"""What users run: `make run`'s own script (scripts/run.sh), on free ports, as a process group.

`served_stack(...)` serves a seeded database through nginx on HTTP and HTTPS, with
INSTANCES=2 gunicorns on unix sockets, Redis for cache and sessions (a key prefix and a Celery
queue of its own, deleted afterwards), a Celery worker and beat, and email to a real SMTP sink.
`RunScript` is run.sh in its own session, so that a signal can go to its whole process group
the way a terminal's Ctrl-C does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from harness.app import isolated_environ, redis_delete_prefix, seed, storefront_command
from harness.processes import HOST, PROCESSES, REPO_ROOT, Unavailable, free_port, require_binary
from harness.smtp import SmtpSink, running_smtp_sink

# A text access-log line's `"request line" status bytes "`: nginx's storefront_text
# (deploy/nginx/templates/storefront.conf.template) and gunicorn's access_log_format
# (deploy/gunicorn.conf.py) both write `"GET / HTTP/1.1" 200 1234 "referer" ...`.
TEXT_ACCESS_STATUS = re.compile(r'" (\d{3}) (?:\d+|-) "')
# nginx's storefront_json lines have these keys; gunicorn's JSON access lines name their logger.
NGINX_JSON_ACCESS_KEYS = frozenset({"status", "request_time", "uri"})
GUNICORN_JSON_ACCESS_LOGGER = "gunicorn.access"


def access_status(line: str) -> int | None:
    """The HTTP status of an access-log line, None for any other line.

    Understands nginx's storefront_text and storefront_json lines (NGINX_LOG_FORMAT text or
    json) and gunicorn's text and JSON access lines (LOG_FORMAT), alone or after a process
    manager's prefix such as honcho's `12:00:00 web.1 | `. A JSON line that is not an access
    line (the app's own, even one quoting a request) is None.
    """
    start = line.find("{")
    if start != -1:
        try:
            record = json.loads(line[start:])
        except ValueError:
            record = None
        if isinstance(record, dict):
            is_access = record.get("logger") == GUNICORN_JSON_ACCESS_LOGGER or (
                record.keys() >= NGINX_JSON_ACCESS_KEYS
            )
            status = record.get("status") if is_access else None
            return int(status) if isinstance(status, int) or str(status).isdigit() else None
    match = TEXT_ACCESS_STATUS.search(line)
    return int(match.group(1)) if match else None


def without_successful_access(text: str, lines: int) -> str:
    """The last `lines` lines of a log, leaving out the access-log lines (either format) of
    requests answered below 400."""
    kept = []
    for line in text.splitlines():
        status = access_status(line)
        if status is None or status >= 400:
            kept.append(line)
    return "\n".join(kept[-lines:])


class RunScript:
    """scripts/run.sh in its own session, its output collected in `text`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "scripts" / "run.sh")],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        PROCESSES.adopt(self.proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_until_serving(self, url: str, timeout: float) -> None:
        """Wait until `url` answers 200; RuntimeError (run.sh stopped) when it exits first or
        time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"run.sh exited with {self.proc.returncode}:\n{self.text[-4000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.interrupt()
        raise RuntimeError(
            f"run.sh did not serve {url} within {timeout:.0f}s:\n{self.text[-4000:]}"
        )

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Wait until the processes printed `text` (e.g. the Celery worker's " ready.")."""
        deadline = time.monotonic() + timeout
        while text not in self.text:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"run.sh never printed {text!r}:\n{self.text[-4000:]}")
            time.sleep(0.2)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the process group; returns the exit status."""
        os.killpg(os.getpgid(self.proc.pid), signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._reader.join(timeout=5)
            PROCESSES.forget(self.proc)

    def survivors(self) -> bool:
        """True when a process of the group outlives the master by 5s (orphaned workers)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return False
            time.sleep(0.1)  # maybe a zombie not yet reaped by init
        return True


def mail_text(message: EmailMessage) -> str:
    """The plain-text body of an email (headers left out)."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


@dataclass
class ServedStack:
    """`make run` (scripts/run.sh) serving a seeded database through nginx, with a worker."""

    http_url: str
    https_url: str
    var_dir: Path
    env: dict[str, str]
    run: RunScript
    smtp: SmtpSink

    def url(self, scheme: str) -> str:
        return self.https_url if scheme == "https" else self.http_url

    def wait_for_mail(self, containing: str, timeout: float = 60) -> EmailMessage:
        """The first email at the SMTP sink whose text contains `containing`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.smtp.received():
                if containing in mail_text(message):
                    return message
            time.sleep(0.1)
        raise TimeoutError(f"no email containing {containing!r} within {timeout:.0f}s")

    def log_tail(self, lines: int = 60) -> str:
        """The last lines every process printed, leaving out successful access-log lines."""
        return without_successful_access(self.run.text, lines)


@contextmanager
def served_stack(
    database_url: str,
    var_dir: Path,
    *,
    redis_url: str,
    tag: str,
    seed_sizes: dict[str, int],
    variables: dict[str, str] | None = None,
) -> Iterator[ServedStack]:
    """scripts/run.sh on free ports with INSTANCES=2 behind nginx, serving `database_url`.

    The database is migrated and seeded with `seed_sizes` (products, orders, users, seed)
    first, so run.sh's `seed --if-empty` leaves it alone. Redis is `redis_url` with key prefix
    `tag` and Celery queue `storefront-<tag>` (their keys deleted afterwards); email goes to a
    real SMTP sink. `variables` are more settings for run.sh (NGINX_RATE_AUTH ...).
    STOREFRONT_SITE_URL is left to run.sh, which sets it to the HTTP address it serves.
    """
    if sys.prefix == sys.base_prefix or not (Path(sys.prefix) / "bin" / "honcho").exists():
        raise Unavailable("the served stack runs scripts/run.sh from the project's virtualenv")
    require_binary("nginx", "nginx")
    if not redis_url:
        raise Unavailable("the served stack needs Redis for cache, sessions and Celery (REDIS_URL)")
    http_addr, https_addr = f"{HOST}:{free_port()}", f"{HOST}:{free_port()}"
    env = isolated_environ("GUNICORN_", "NGINX_", "CELERY_", "STOREFRONT_", "EMAIL_")
    with running_smtp_sink() as smtp:
        env.update(
            VENV=sys.prefix,
            STOREFRONT_ENV="dev",
            DJANGO_SETTINGS_MODULE="storefront.settings",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            STOREFRONT_CACHE_KEY_PREFIX=tag,
            CELERY_QUEUE=f"storefront-{tag}",
            CELERY_CONCURRENCY="2",
            EMAIL_URL=smtp.url,
            STOREFRONT_VAR_DIR=str(var_dir),
            INSTANCES="2",
            GUNICORN_WORKERS="2",
            GUNICORN_GRACEFUL_TIMEOUT="5",
            NGINX_LISTEN_HTTP=http_addr,
            NGINX_LISTEN_HTTPS=https_addr,
            PYTHONUNBUFFERED="1",
            **(variables or {}),
        )
        storefront_command(["migrate", "--noinput"], env, timeout=300)
        seed(env, **seed_sizes)
        run = RunScript(env)
        try:
            run.wait_until_serving(f"http://{http_addr}/accounts/login/", timeout=300)
            run.wait_for_output(" ready.", timeout=60)  # the Celery worker consumes its queue
            yield ServedStack(
                http_url=f"http://{http_addr}",
                https_url=f"https://{https_addr}",
                var_dir=var_dir,
                env=env,
                run=run,
                smtp=smtp,
            )
        finally:
            if run.proc.poll() is None:
                run.interrupt()
            redis_delete_prefix(redis_url, tag)
