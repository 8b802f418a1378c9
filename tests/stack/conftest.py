"""Fixtures that run the real stack (started by the `harness` package, as `make bench`,
`make loadtest` and `make security` start theirs): a throwaway database, Storefront served,
Chromium.

* `served_stack`: what users run. `make run`'s own script (scripts/run.sh) serving a seeded
  throwaway database through nginx on HTTP and HTTPS, two gunicorn instances on unix sockets,
  Redis for cache and sessions, a Celery worker and beat, email to a real SMTP sink. The
  browser journeys (test_browser.py, watched_page) go through it.
* `stack_server`: gunicorn alone on a TCP port, for tests that put their own nginx (other
  settings, a second instance, a dead upstream) in front of it (tests/stack/nginx/).

Both are subprocesses with their own database, never pytest-django's test database: tests
using these fixtures must not request `db`, and must check results through the pages
(Playwright's sync API keeps an asyncio loop running, in which Django refuses ORM calls anyway).
A missing service (PostgreSQL, nginx, Redis) skips them (root conftest.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from conftest import skip_or_fail
from harness import (
    PROCESSES,
    REPO_ROOT,
    Database,
    free_port,
    isolated_environ,
    seed,
    start_gunicorn,
    stop_process,
    storefront_command,
    wait_http,
)
from harness.postgres import is_postgres
from harness.served import (
    ServedStack,
    without_successful_access,
)
from harness.served import (
    served_stack as start_served_stack,
)

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
SEED_SIZES = {"products": 300, "orders": 600, "users": 30, "seed": 7}
CALL_FAILED = pytest.StashKey[bool]()


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
        return without_successful_access(text, lines)


@contextmanager
def throwaway_database(tmp_path_factory: pytest.TempPathFactory, tag: str) -> Iterator[str]:
    """URL of an empty database of our own, dropped afterwards.

    PostgreSQL when DATABASE_URL points at it (a fresh `storefront_<tag>_<pid>` beside it),
    otherwise a SQLite file in a temporary directory.
    """
    outer = os.environ.get("DATABASE_URL", "")
    if not is_postgres(outer):
        yield f"sqlite:///{tmp_path_factory.mktemp(f'{tag}-db') / 'storefront.sqlite3'}"
        return
    database = Database.beside(outer, f"storefront_{tag}_{os.getpid()}").create()
    try:
        yield database.url
    finally:
        database.drop()


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


@pytest.fixture(scope="session")
def stack_server(
    stack_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackServer]:
    """Migrate, seed and collect static files into throwaway places, then serve them with
    gunicorn (deploy/gunicorn.conf.py, two workers) on a free loopback port."""
    var_dir = tmp_path_factory.mktemp("stack-var")
    port = free_port()
    env = isolated_environ("GUNICORN_")
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
        # tests/stack/nginx/ puts nginx in front: Django believes its X-Forwarded-Proto.
        STOREFRONT_BEHIND_PROXY="1",
        GUNICORN_WORKERS="2",
        GUNICORN_GRACEFUL_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
    )
    storefront_command(["migrate", "--noinput"], env, timeout=300)
    seed(env, **SEED_SIZES)
    storefront_command(["collectstatic", "--noinput"], env, timeout=300)

    PROCESSES.install()  # SIGTERM or SIGHUP to pytest stops the servers too
    log_path = var_dir / "gunicorn.log"
    url = f"http://127.0.0.1:{port}"
    proc = start_gunicorn(env, log_path)
    try:
        wait_http(f"{url}/accounts/login/", proc, log_path, timeout=60)
        yield StackServer(url=url, log_path=log_path, env=env)
    finally:
        stop_process(proc)


# nginx's login/signup/token/password limit is 5 POSTs a minute per address, and every journey
# comes from 127.0.0.1: the served stack raises it to this (tests/stack/nginx/test_limits.py
# tests the default).
SERVED_RATE_AUTH = "300r/m"


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


@pytest.fixture(scope="session")
def served_stack(
    served_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedStack]:
    """scripts/run.sh (what `make run` runs) on free ports, with INSTANCES=2 behind nginx
    (harness.served), serving `served_database` seeded with SEED_SIZES; Redis is the outer
    REDIS_URL with a key prefix and a Celery queue of this run's own."""
    PROCESSES.install()  # SIGTERM or SIGHUP to pytest stops the servers too
    with start_served_stack(
        served_database,
        tmp_path_factory.mktemp("served-var"),
        redis_url=os.environ.get("REDIS_URL", ""),
        tag=f"e2e{os.getpid()}",
        seed_sizes=SEED_SIZES,
        variables={"NGINX_RATE_AUTH": SERVED_RATE_AUTH},
    ) as stack:
        yield stack


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
