"""Fixtures that run the real stack: a throwaway database, Storefront served, Chromium.

* `served_stack`: what users run. `make run`'s own script (scripts/run.sh) serving a seeded
  throwaway database through nginx on HTTP and HTTPS, two gunicorn instances on unix sockets,
  Redis for cache and sessions, a Celery worker and beat, email to a real SMTP sink. The
  browser journeys (test_browser.py, watched_page) go through it.
* `stack_server`: gunicorn alone on a TCP port, for tests that put their own nginx (other
  settings, a second instance, a dead upstream) in front of it (test_nginx.py).

Both are subprocesses with their own database, never pytest-django's test database: tests
using these fixtures must not request `db`, and must check results through the pages
(Playwright's sync API keeps an asyncio loop running, in which Django refuses ORM calls anyway).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from conftest import skip_or_fail
from tests.smtp_sink import SmtpSink, running_smtp_sink

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO_ROOT / "deploy" / "gunicorn.conf.py"
SCREENSHOT_DIR = REPO_ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("STOREFRONT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # sessions and CI run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Browser-test data set: big enough for pagination, search and a chart with data every day.
SEED_ARGS = ["--products", "300", "--orders", "600", "--users", "30", "--seed", "7"]
CALL_FAILED = pytest.StashKey[bool]()
# An access-log line (deploy/gunicorn.conf.py format) of a request answered below 400.
SUCCESSFUL_ACCESS = re.compile(r'" [123]\d\d \S+ "')
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
# Variables of the outer environment that must not leak into the server under test.
ISOLATED_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CACHE_URL",
    "STATICFILES_STORAGE",
    "DJANGO_DEBUG",
    "STOREFRONT_VAR_DIR",
    "STATIC_ROOT",
    "MEDIA_ROOT",
}


@dataclass(frozen=True)
class StackServer:
    """A running gunicorn serving Storefront from its own database."""

    url: str
    log_path: Path
    env: dict[str, str]

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    def log_tail(self, lines: int = 40) -> str:
        """The server log's last lines, leaving out access-log lines of successful requests."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        kept = [line for line in text.splitlines() if not SUCCESSFUL_ACCESS.search(line)]
        return "\n".join(kept[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_database(tmp_path_factory: pytest.TempPathFactory, tag: str) -> Iterator[str]:
    """URL of an empty database of our own, dropped afterwards.

    PostgreSQL when DATABASE_URL points at it (a fresh `storefront_<tag>_<pid>`), otherwise a
    SQLite file in a temporary directory.
    """
    outer = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(outer)
    if parts.scheme not in POSTGRES_SCHEMES:
        yield f"sqlite:///{tmp_path_factory.mktemp(f'{tag}-db') / 'storefront.sqlite3'}"
        return

    import psycopg
    from psycopg import sql

    name = f"storefront_{tag}_{os.getpid()}"
    admin_url = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(drop)
            conn.execute(create)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at {parts.hostname}:{parts.port or 5432} unavailable: {exc}")
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(drop)


@pytest.fixture(scope="session")
def stack_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gunicorn-only `stack_server`'s database (the served stack has its own)."""
    with throwaway_database(tmp_path_factory, "e2e") as url:
        yield url


@pytest.fixture(scope="session")
def served_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The served stack's database: both stacks seed theirs, and seeding refuses a full shop."""
    with throwaway_database(tmp_path_factory, "served") as url:
        yield url


def _run_command(args: list[str], env: dict[str, str], timeout: float) -> None:
    command = [sys.executable, "-m", "storefront", *args]
    try:
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`storefront {' '.join(args)}` took longer than {timeout:.0f}s")
    if done.returncode != 0:
        pytest.fail(
            f"`storefront {' '.join(args)}` exited with {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"gunicorn exited with {proc.returncode} before serving:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered; the tests judge the status
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer {url} within 60s:\n{log_path.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Graceful stop (gunicorn: SIGTERM, nginx: SIGQUIT), then kill after a bounded wait."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_gunicorn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """gunicorn with deploy/gunicorn.conf.py (GUNICORN_BIND from env), logging to log_path."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "storefront.wsgi"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="session")
def stack_server(
    stack_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackServer]:
    """Migrate, seed and collect static files into throwaway places, then serve them with
    gunicorn (deploy/gunicorn.conf.py, two workers) on a free loopback port."""
    var_dir = tmp_path_factory.mktemp("stack-var")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith("GUNICORN_")}
    env.update(
        STOREFRONT_ENV="dev",
        DJANGO_SETTINGS_MODULE="storefront.settings",
        DATABASE_URL=stack_database,
        # No REDIS_URL: a file cache under this server's own var dir, so nothing it caches is
        # shared with the test processes or other servers using the same Redis.
        STOREFRONT_VAR_DIR=str(var_dir),
        STATIC_ROOT=str(var_dir / "static"),
        MEDIA_ROOT=str(var_dir / "media"),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        # test_nginx.py puts nginx in front: Django believes its X-Forwarded-Proto.
        STOREFRONT_BEHIND_PROXY="1",
        GUNICORN_WORKERS="2",
        GUNICORN_GRACEFUL_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
    )
    _run_command(["migrate", "--noinput"], env, timeout=300)
    _run_command(["seed", *SEED_ARGS], env, timeout=600)
    _run_command(["collectstatic", "--noinput"], env, timeout=300)

    log_path = var_dir / "gunicorn.log"
    url = f"http://127.0.0.1:{port}"
    proc = start_gunicorn(env, log_path)
    try:
        _wait_until_serving(proc, f"{url}/accounts/login/", log_path)
        yield StackServer(url=url, log_path=log_path, env=env)
    finally:
        stop_process(proc)


class RunScript:
    """scripts/run.sh in its own session, so a signal can go to its whole process group the
    way a terminal's Ctrl-C does."""

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"run.sh exited with {self.proc.returncode}:\n{self.text[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    assert response.status == 200
                    return
            except OSError:
                time.sleep(0.3)
        self.interrupt()
        pytest.fail(f"run.sh did not serve {url} within {timeout:.0f}s:\n{self.text[-4000:]}")

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Wait until the processes printed `text` (e.g. the Celery worker's " ready.")."""
        deadline = time.monotonic() + timeout
        while text not in self.text:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"run.sh never printed {text!r}:\n{self.text[-4000:]}")
            time.sleep(0.2)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the process group; returns the exit status."""
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._reader.join(timeout=5)

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


# nginx's login/signup/token/password limit is 5 POSTs a minute per address, and every journey
# comes from 127.0.0.1: the served stack raises it to this (test_nginx.py tests the default).
SERVED_RATE_AUTH = "300r/m"


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
        pytest.fail(f"no email containing {containing!r} within {timeout:.0f}s")

    def log_tail(self, lines: int = 60) -> str:
        """The last lines every process printed, leaving out successful access-log lines."""
        kept = [line for line in self.run.text.splitlines() if not SUCCESSFUL_ACCESS.search(line)]
        return "\n".join(kept[-lines:])


@dataclass(frozen=True)
class Site:
    """One address of a served stack (its HTTP or HTTPS origin), as a browser test sees it."""

    url: str
    stack: ServedStack

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    def log_tail(self, lines: int = 60) -> str:
        return self.stack.log_tail(lines)


def mail_text(message: EmailMessage) -> str:
    """The plain-text body of an email (headers left out)."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def _delete_redis_keys(redis_url: str, patterns: list[str]) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        for pattern in patterns:
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="session")
def served_stack(
    served_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedStack]:
    """scripts/run.sh (what `make run` runs) on free ports, with INSTANCES=2 behind nginx.

    The database is migrated and seeded with SEED_ARGS first, so run.sh's `seed --if-empty`
    leaves it alone. Redis is the outer REDIS_URL with a key prefix and a Celery queue of this
    run's own (deleted afterwards); email goes to a real SMTP sink. STOREFRONT_SITE_URL is left
    to run.sh, which sets it to the HTTP address it serves.
    """
    import shutil

    if sys.prefix == sys.base_prefix or not (Path(sys.prefix) / "bin" / "honcho").exists():
        skip_or_fail("the served stack runs scripts/run.sh from the project's virtualenv")
    if not shutil.which("nginx"):
        skip_or_fail("nginx not installed (apt-get install nginx)")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        skip_or_fail("the served stack needs Redis for cache, sessions and Celery (REDIS_URL)")
    var_dir = tmp_path_factory.mktemp("served-var")
    tag = f"e2e{os.getpid()}"
    http_addr, https_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    env = {
        k: v
        for k, v in env.items()
        if not k.startswith(("GUNICORN_", "NGINX_", "CELERY_", "STOREFRONT_", "EMAIL_"))
    }
    with running_smtp_sink() as smtp:
        env.update(
            VENV=sys.prefix,
            STOREFRONT_ENV="dev",
            DJANGO_SETTINGS_MODULE="storefront.settings",
            DATABASE_URL=served_database,
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
            NGINX_RATE_AUTH=SERVED_RATE_AUTH,
            PYTHONUNBUFFERED="1",
        )
        _run_command(["migrate", "--noinput"], env, timeout=300)
        _run_command(["seed", *SEED_ARGS], env, timeout=600)
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
            _delete_redis_keys(redis_url, [f"{tag}*", f"*storefront-{tag}*"])


@pytest.fixture(params=["https"])
def site(request: pytest.FixtureRequest, served_stack: ServedStack) -> Site:
    """The served stack's HTTPS origin; parametrize `site` with ["http", "https"] (indirect)
    to run a test over both."""
    return Site(url=served_stack.url(request.param), stack=served_stack)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright; never a downloaded browser.

    Module scope: Playwright's loop must not outlive the browser tests, or Django would refuse
    ORM calls in whatever test runs next in this process.
    """
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        skip_or_fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Server(Protocol):
    """What a browser test needs of whatever serves it: its origin and its logs."""

    url: str

    @property
    def netloc(self) -> str: ...

    def log_tail(self, lines: int = ...) -> str: ...


# Content-Security-Policy violations, recorded by the page itself (nginx sets the CSP).
CSP_RECORDER_JS = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push("
    "`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sample})`));"
)


@dataclass
class WatchedPage:
    """A Playwright page plus everything it asked for and everything that went wrong."""

    page: Page
    server: Server
    name: str
    requested_urls: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)
    _shots: int = 0

    def screenshot(self, label: str) -> Path:
        """Save a full-page screenshot as test-output/screenshots/<test>-<n>-<label>.png."""
        self._shots += 1
        path = SCREENSHOT_DIR / f"{self.slug(f'{self._shots:02d}-{label}')}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def slug(self, suffix: str) -> str:
        """File-name-safe `<test name>-<suffix>`."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.name}-{suffix}")

    def foreign_requests(self) -> list[str]:
        """Requests to any origin other than the server under test (data: URLs are inline)."""
        return [
            url
            for url in self.requested_urls
            if not url.startswith(("data:", "blob:", "about:"))
            and urlsplit(url).netloc != self.server.netloc
        ]

    def csp_violations(self) -> list[str]:
        try:
            return list(self.page.evaluate("window.__cspViolations || []"))
        except Exception:  # the page is gone (closed or navigating): nothing to read
            return []

    def expect_bad_response(self, status: int, path_fragment: str) -> None:
        """Forget an answer >= 400 the test provoked on purpose (a wrong password, a 404)."""
        match = [r for r in self.bad_responses if r.startswith(f"{status} ") and path_fragment in r]
        assert match, f"expected a {status} for {path_fragment}, saw {self.bad_responses}"
        self.bad_responses.remove(match[0])
        # Chromium also logs the navigation's status as a console error ("Failed to load
        # resource: the server responded with a status of 400 ()") naming the same URL.
        url = match[0].split(" ", 1)[1]
        logged = [e for e in self.console_errors if f"status of {status}" in e and url in e]
        if logged:
            self.console_errors.remove(logged[0])

    def expect_download(self, url: str) -> None:
        """Forget the aborted navigation Chromium reports when a link turns into a download."""
        match = [r for r in self.failed_requests if r == f"{url}: net::ERR_ABORTED"]
        assert match, f"no aborted navigation to {url} in {self.failed_requests}"
        self.failed_requests.remove(match[0])

    def assert_clean(self) -> None:
        problems = {
            "console errors": self.console_errors,
            "uncaught page errors": self.page_errors,
            "failed requests": self.failed_requests,
            "responses >= 400": self.bad_responses,
            "requests to other hosts": self.foreign_requests(),
            "CSP violations": self.csp_violations(),
        }
        found = {what: items for what, items in problems.items() if items}
        assert not found, f"{found}\n--- server log ---\n{self.server.log_tail()}"


def watch_page(page: Page, watched: WatchedPage) -> None:
    """Record every request, console error, page error, failed request and answer >= 400."""
    page.add_init_script(CSP_RECORDER_JS)
    page.on("request", lambda req: watched.requested_urls.append(req.url))
    page.on(
        "console",
        lambda msg: (
            watched.console_errors.append(f"{msg.text} ({msg.location.get('url')})")
            if msg.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
    page.on(
        "requestfailed",
        lambda req: watched.failed_requests.append(f"{req.url}: {req.failure}"),
    )
    page.on(
        "response",
        lambda resp: (
            watched.bad_responses.append(f"{resp.status} {resp.url}")
            if resp.status >= 400
            else None
        ),
    )


def new_watched_page(
    browser: Browser,
    server: Server,
    name: str,
    *,
    viewport: dict[str, int] | None = None,
    **context_options: object,
) -> tuple[BrowserContext, WatchedPage]:
    """A fresh browser context (own cookies) on `server`, with every request recorded.

    Certificate errors are ignored for an https origin only (the stack's self-signed one).
    """
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        base_url=server.url,
        viewport=viewport or {"width": 1280, "height": 900},
        ignore_https_errors=server.url.startswith("https:"),
        **context_options,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = WatchedPage(page=page, server=server, name=name)
    for stale in SCREENSHOT_DIR.glob(f"{watched.slug('')}*.png"):
        stale.unlink()  # screenshots of an earlier run of this test would mislead
    watch_page(page, watched)
    return context, watched


@pytest.fixture
def watched_page(
    chromium: Browser, site: Site, request: pytest.FixtureRequest
) -> Iterator[WatchedPage]:
    """A fresh browser context on the served stack (nginx, HTTPS unless `site` says http).

    Navigation answers >= 400 that a test provokes on purpose are removed with
    `expect_bad_response`; everything else counts against `assert_clean()`.
    """
    context, watched = new_watched_page(chromium, site, request.node.name)
    try:
        yield watched
    finally:
        if request.node.stash.get(CALL_FAILED, False):
            watched.screenshot("failure")
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember whether the test body failed, so `watched_page` can screenshot the wreck."""
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report
