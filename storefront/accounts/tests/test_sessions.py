"""Each session store STOREFRONT_SESSION_STORE offers, against a real server of our own.

The settings under test are not written out here: `store_settings()` runs storefront/settings.py
with the environment a deployment would set (REDIS_URL, STOREFRONT_SESSION_STORE, MEMCACHED_URL)
and the test applies the CACHES / SESSION_ENGINE / SESSION_CACHE_ALIAS it computes. Changing
CACHES through pytest-django's `settings` fixture resets Django's cache handlers (the
setting_changed signal), so the next `caches[...]` talks to the new servers; a Client created
afterwards loads the session middleware with the new engine. (django-redis keeps one
connection pool per URL for the whole process: every test here uses a server on a new port.)

The servers are private (harness/cache_servers.py): FLUSHALL, stop and restart never touch the
shared Redis of REDIS_URL. Every request runs under a deadline (SIGALRM) so a hang fails the
test instead of blocking the run; the deadlines are generous, the assertions are about behaviour.
"""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.test import Client

from harness.cache_servers import (
    MemcachedServer,
    RedisServer,
    black_hole_server,
    running_memcached,
    running_redis,
)
from storefront.catalog.models import Product
from tests.factories import TEST_PASSWORD, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parents[3]
SETTINGS_FILE = REPO_ROOT / "storefront" / "settings.py"
# Key prefixes Django's session backends put before the session key (then KEY_PREFIX:version:).
CACHED_DB_PREFIX = "django.contrib.sessions.cached_db"
CACHE_PREFIX = "django.contrib.sessions.cache"
# Per-request deadline: far above what a request takes (milliseconds; a few socket timeouts
# against a silent server), far below "hung".
REQUEST_DEADLINE = 20.0


class Hung(BaseException):  # not an Exception: no `except Exception` may swallow it
    """A request outlived its deadline."""


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Interrupt the block with Hung after `seconds` (main thread only, as pytest runs tests)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hung(f"{what} still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Browser:
    """A test Client with CSRF checks on, each request under a deadline, timings recorded."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.timings: list[tuple[str, float]] = []

    def _run(self, method: str, url: str, data: dict[str, Any] | None = None):
        started = time.monotonic()
        with deadline(REQUEST_DEADLINE, f"{method} {url}"):
            if method == "GET":
                response = self.client.get(url)
            else:
                token = self.client.cookies["csrftoken"].value
                response = self.client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})
        self.timings.append((f"{method} {url}", time.monotonic() - started))
        return response

    def get(self, url: str):
        return self._run("GET", url)

    def post(self, url: str, data: dict[str, Any] | None = None):
        return self._run("POST", url, data)

    @property
    def session_key(self) -> str:
        return self.client.cookies[django_settings.SESSION_COOKIE_NAME].value

    def log_in(self, username: str) -> None:
        assert self.get("/accounts/login/").status_code == 200
        response = self.post("/accounts/login/", {"username": username, "password": TEST_PASSWORD})
        assert response.status_code == 302, response.content.decode()[:2000]
        assert response["Location"] == "/dashboard/"

    def add_to_cart(self, product: Product, quantity: int = 2) -> None:
        response = self.post(f"/cart/add/{product.id}/", {"quantity": quantity})
        assert response.status_code == 302, response.content.decode()[:2000]
        assert response["Location"] == "/cart/"

    def log_out(self) -> None:
        response = self.post("/accounts/logout/")
        assert response.status_code == 302
        assert response["Location"] == "/"


def signed_in_as(html: str, user) -> bool:
    return f'class="nav-user">{user.display_name}<' in html


def cart_shows(html: str, product: Product, quantity: int) -> bool:
    return product.name in html and f'id="cart-count">{quantity}<' in html


def store_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The CACHES and session settings storefront/settings.py computes for this environment."""
    with monkeypatch.context() as patched:  # the environment is restored right after
        for name in (
            "STOREFRONT_SESSION_STORE",
            "MEMCACHED_URL",
            "REDIS_SOCKET_TIMEOUT",
            "STOREFRONT_CACHE_KEY_PREFIX",  # the deployment default prefixes, sf and sfs
        ):
            patched.delenv(name, raising=False)  # defaults unless this test sets them
        for name, value in {"STOREFRONT_ENV": "test", **env}.items():
            patched.setenv(name, value)
        computed = runpy.run_path(str(SETTINGS_FILE))
    return {name: computed[name] for name in ("CACHES", "SESSION_ENGINE", "SESSION_CACHE_ALIAS")}


def use_store(settings, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """Switch this test to the session store the environment selects (caches reset at once)."""
    computed = store_settings(monkeypatch, **env)
    # The cache circuit breaker (storefront/redis_breaker.py) would keep a restarted server out
    # for its cool-down; these tests restart servers and expect them back at once.
    settings.REDIS_BREAKER_COOLDOWN = 0.01
    settings.CACHES = computed["CACHES"]
    settings.SESSION_ENGINE = computed["SESSION_ENGINE"]
    settings.SESSION_CACHE_ALIAS = computed["SESSION_CACHE_ALIAS"]
    return computed


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def memcached_server() -> Iterator[MemcachedServer]:
    with running_memcached() as server:
        yield server


@pytest.fixture
def shopper():
    return UserFactory(username="ada", full_name="Ada Lovelace")


@pytest.fixture
def product() -> Product:
    return ProductFactory(name="Brass Compass", stock=10)


def test_settings_switch_really_resets_the_cache_handlers(settings, monkeypatch, redis_server):
    """The premise of every test below: after `settings.CACHES = ...` caches use the new server."""
    computed = use_store(settings, monkeypatch, REDIS_URL=redis_server.url)
    assert computed["SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"
    caches["sessions"].set("probe", 1)
    caches["default"].set("probe", 2)
    assert redis_server.keys() == ["sf:1:probe", "sfs:1:probe"]


def test_cached_db_sessions_survive_flushall_and_restart(
    settings, monkeypatch, redis_server, shopper, product
):
    computed = use_store(settings, monkeypatch, REDIS_URL=redis_server.url)
    assert computed["SESSION_CACHE_ALIAS"] == "sessions"
    browser = Browser()
    browser.log_in("ada")
    browser.add_to_cart(product, 2)
    session_entry = f"sfs:1:{CACHED_DB_PREFIX}{browser.session_key}"
    # The session really is in Redis, under the sessions alias' prefix (the cache is used) ...
    assert session_entry in redis_server.keys("sfs:*")
    html = browser.get("/cart/").content.decode()
    assert signed_in_as(html, shopper) and cart_shows(html, product, 2)

    # ... and in the database too, which is what makes it survive losing Redis.
    redis_server.flushall()
    assert redis_server.keys() == []
    response = browser.get("/cart/")
    assert response.status_code == 200
    html = response.content.decode()
    assert signed_in_as(html, shopper) and cart_shows(html, product, 2)
    assert session_entry in redis_server.keys("sfs:*")  # read back from the database, re-cached

    redis_server.stop()
    redis_server.start()
    assert redis_server.keys() == []  # no persistence: the restarted Redis is empty
    response = browser.get("/cart/")
    assert response.status_code == 200
    html = response.content.decode()
    assert signed_in_as(html, shopper) and cart_shows(html, product, 2)
    assert browser.get("/dashboard/").status_code == 200  # login_required still lets us in

    # Changes made after the restart stick as well.
    browser.add_to_cart(product, 1)
    redis_server.flushall()
    assert cart_shows(browser.get("/cart/").content.decode(), product, 3)


def test_cache_only_sessions_live_in_redis_and_flushall_logs_out(
    settings, monkeypatch, redis_server, shopper, product
):
    computed = use_store(
        settings, monkeypatch, REDIS_URL=redis_server.url, STOREFRONT_SESSION_STORE="cache"
    )
    assert computed["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"
    browser = Browser()
    browser.log_in("ada")
    browser.add_to_cart(product, 1)
    assert f"sfs:1:{CACHE_PREFIX}{browser.session_key}" in redis_server.keys("sfs:*")
    from django.contrib.sessions.models import Session

    assert not Session.objects.exists()  # Redis only: nothing in the database
    html = browser.get("/cart/").content.decode()
    assert signed_in_as(html, shopper) and cart_shows(html, product, 1)

    # The documented trade-off: losing Redis' data logs everyone out and empties every cart,
    # and the next page is an ordinary anonymous page, not an error.
    redis_server.flushall()
    response = browser.get("/cart/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not signed_in_as(html, shopper)
    assert 'id="cart-count"' not in html and product.name not in html
    assert ">Log in</a>" in html
    response = browser.get("/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    # Logging in again works.
    browser.log_in("ada")
    assert signed_in_as(browser.get("/dashboard/").content.decode(), shopper)


def test_memcached_sessions(settings, monkeypatch, memcached_server, shopper, product):
    computed = use_store(
        settings,
        monkeypatch,
        STOREFRONT_SESSION_STORE="memcached",
        MEMCACHED_URL=f"memcached://{memcached_server.location}",
    )
    assert computed["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"
    assert computed["SESSION_CACHE_ALIAS"] == "memcached"
    assert computed["CACHES"]["memcached"]["LOCATION"] == [memcached_server.location]
    browser = Browser()
    browser.log_in("ada")
    browser.add_to_cart(product, 2)
    html = browser.get("/cart/").content.decode()
    assert signed_in_as(html, shopper) and cart_shows(html, product, 2)

    # The session is in our memcached, read there with pymemcache (Django's key: prefix:1:key).
    raw_key = f"sf:1:{CACHE_PREFIX}{browser.session_key}"
    with memcached_server.client() as raw:
        assert raw.get(raw_key) is not None
    session = caches["memcached"].get(f"{CACHE_PREFIX}{browser.session_key}")
    assert int(session["_auth_user_id"]) == shopper.pk
    assert session["cart"] == {str(product.id): 2}

    browser.log_out()
    with memcached_server.client() as raw:
        assert raw.get(raw_key) is None  # logout deleted it
    html = browser.get("/cart/").content.decode()
    assert not signed_in_as(html, shopper) and ">Log in</a>" in html


def _log_in_shop_and_log_out(browser: Browser, shopper, product: Product) -> None:
    browser.log_in("ada")
    response = browser.get("/dashboard/")
    assert response.status_code == 200
    assert signed_in_as(response.content.decode(), shopper)
    browser.add_to_cart(product, 1)
    assert cart_shows(browser.get("/cart/").content.decode(), product, 1)
    browser.log_out()
    html = browser.get("/cart/").content.decode()
    assert not signed_in_as(html, shopper) and ">Log in</a>" in html
    assert browser.get("/dashboard/").status_code == 302


def _anonymous_pages_answer(browser: Browser, product: Product) -> None:
    for url in ("/products/", f"/products/{product.slug}/", "/", "/accounts/login/"):
        response = browser.get(url)
        assert response.status_code == 200, url
        assert product.name in response.content.decode() or url == "/accounts/login/"


def test_redis_stopped_cached_db_pages_login_and_logout_still_work(
    settings, monkeypatch, redis_server, shopper, product
):
    use_store(settings, monkeypatch, REDIS_URL=redis_server.url)
    redis_server.stop()  # connection refused for both the default and the sessions alias
    browser = Browser()
    _anonymous_pages_answer(browser, product)
    _log_in_shop_and_log_out(browser, shopper, product)
    # Redis comes back (empty): a new login is cached there again.
    redis_server.start()
    browser.log_in("ada")
    assert f"sfs:1:{CACHED_DB_PREFIX}{browser.session_key}" in redis_server.keys("sfs:*")


def test_silent_redis_cached_db_login_ends_at_the_socket_timeouts(
    settings, monkeypatch, shopper, product
):
    """A Redis that accepts connections and never answers: each wait ends at the timeout.

    A short REDIS_SOCKET_TIMEOUT keeps the test quick (every cache command costs one timeout);
    the deadline on each request fails the test should any wait not be bounded.
    """
    with black_hole_server() as hole:
        use_store(settings, monkeypatch, REDIS_URL=hole.url, REDIS_SOCKET_TIMEOUT="0.1")
        browser = Browser()
        _log_in_shop_and_log_out(browser, shopper, product)
    assert hole.accepted > 0  # the cache commands really went to the silent server
    print("silent redis:", ", ".join(f"{what} {took:.2f}s" for what, took in browser.timings))


@pytest.mark.parametrize("outage", ["stopped", "silent"])
def test_redis_outage_cache_only_store_fails_login_at_once(
    settings, monkeypatch, redis_server, shopper, product, outage
):
    """The cache-only store has nowhere else to keep a session: the visitor is anonymous,
    logout works, login and cart changes answer 500 at once.

    Not after Django's 10,000 session-key retries (settings.py: the session alias raises),
    which take seconds against a stopped Redis and hours against a silent one.
    """
    use_store(settings, monkeypatch, REDIS_URL=redis_server.url, STOREFRONT_SESSION_STORE="cache")
    browser = Browser()
    browser.client.raise_request_exception = False
    browser.log_in("ada")
    with black_hole_server() as hole:
        redis_server.stop()
        if outage == "silent":
            use_store(
                settings,
                monkeypatch,
                REDIS_URL=hole.url,
                STOREFRONT_SESSION_STORE="cache",
                REDIS_SOCKET_TIMEOUT="0.1",
            )
        else:
            _anonymous_pages_answer(browser, product)
        # The session cannot be read: the visitor is anonymous, logging out still works ...
        response = browser.post("/accounts/logout/")
        assert response.status_code == 302 and response["Location"] == "/"
        response = browser.get("/dashboard/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/")
        # ... but a new session cannot be stored: login and cart changes fail, at once.
        response = browser.post(f"/cart/add/{product.id}/", {"quantity": 1})
        assert response.status_code == 500
        response = browser.post("/accounts/login/", {"username": "ada", "password": TEST_PASSWORD})
        assert response.status_code == 500
    # Once Redis is back (empty), login works again.
    redis_server.start()
    use_store(settings, monkeypatch, REDIS_URL=redis_server.url, STOREFRONT_SESSION_STORE="cache")
    browser.log_in("ada")
    assert signed_in_as(browser.get("/dashboard/").content.decode(), shopper)


def test_memcached_stopped_fails_login_at_once(
    settings, monkeypatch, memcached_server, shopper, product
):
    use_store(
        settings,
        monkeypatch,
        STOREFRONT_SESSION_STORE="memcached",
        MEMCACHED_URL=memcached_server.location,
    )
    memcached_server.stop()
    browser = Browser()
    browser.client.raise_request_exception = False
    _anonymous_pages_answer(browser, product)
    response = browser.post("/accounts/login/", {"username": "ada", "password": TEST_PASSWORD})
    assert response.status_code == 500


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"STOREFRONT_SESSION_STORE": "bogus"},
            "STOREFRONT_SESSION_STORE must be one of cached_db, cache, memcached, db, not 'bogus'",
        ),
        (
            {"STOREFRONT_SESSION_STORE": "memcached", "MEMCACHED_URL": ""},
            "STOREFRONT_SESSION_STORE=memcached needs MEMCACHED_URL",
        ),
    ],
)
def test_bad_session_store_settings_are_refused(env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import storefront.settings"],
        cwd=REPO_ROOT,
        env={**os.environ, "STOREFRONT_ENV": "test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr, result.stderr
