"""Fixtures that run the real stack: a throwaway database, gunicorn serving Storefront, Chromium.

The server is a set of subprocesses with their own database, never pytest-django's test
database: tests using these fixtures must not request `db`, and must check results through
the pages (Playwright's sync API keeps an asyncio loop running, in which Django refuses ORM
calls anyway).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import skip_or_fail

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


@pytest.fixture(scope="session")
def stack_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an empty database that lives for the session.

    PostgreSQL when DATABASE_URL points at it (a fresh `storefront_e2e_<pid>`, dropped at the
    end), otherwise a SQLite file in a temporary directory.
    """
    outer = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(outer)
    if parts.scheme not in POSTGRES_SCHEMES:
        yield f"sqlite:///{tmp_path_factory.mktemp('stack-db') / 'storefront.sqlite3'}"
        return

    import psycopg
    from psycopg import sql

    name = f"storefront_e2e_{os.getpid()}"
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


@dataclass
class WatchedPage:
    """A Playwright page plus everything it asked for and everything that went wrong."""

    page: Page
    server: StackServer
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

    def assert_clean(self) -> None:
        problems = {
            "console errors": self.console_errors,
            "uncaught page errors": self.page_errors,
            "failed requests": self.failed_requests,
            "responses >= 400": self.bad_responses,
            "requests to other hosts": self.foreign_requests(),
        }
        found = {what: items for what, items in problems.items() if items}
        assert not found, f"{found}\n--- server log ---\n{self.server.log_tail()}"


@pytest.fixture
def watched_page(
    chromium: Browser, stack_server: StackServer, request: pytest.FixtureRequest
) -> Iterator[WatchedPage]:
    """A fresh browser context (own cookies) on the stack server, with every request recorded.

    Navigation answers >= 400 that a test provokes on purpose can be removed from
    `bad_responses` by the test; everything else counts against `assert_clean()`.
    """
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(
        base_url=stack_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = WatchedPage(page=page, server=stack_server, name=request.node.name)
    for stale in SCREENSHOT_DIR.glob(f"{watched.slug('')}*.png"):
        stale.unlink()  # screenshots of an earlier run of this test would mislead
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
