"""The cache cannot be flooded, and a full cache cannot push out sessions or queued tasks.

* Page keys: made-up query parameters (``?junk=N``) share the canonical page's one entry; bad
  values (a 400, a 404) leave no entry at all.
* Redis roles: REDIS_CACHE_URL (evicting: maxmemory + allkeys-lru) holds the cache, REDIS_URL
  (noeviction) the sessions and the Celery broker. Filling the cache past its maxmemory evicts
  cache entries only. A second database number on the cache's server would not protect them:
  the eviction policy belongs to the server (the last test shows a session evicted that way).

The settings are not written out here: `computed_settings()` runs storefront/settings.py with
the environment a deployment would set, and the test applies what it computes (pytest-django's
`settings` resets the cache handlers). Every Redis is a private throwaway server
(harness/cache_servers.py), never the shared one.
"""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client

from harness.cache_servers import RedisServer, running_redis
from storefront.cache_pages import CACHE_HEADER
from storefront.celery import app as celery_app
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "storefront" / "settings.py"
PAGE_KEYS = "*:catalog:page:*"  # storefront/caching.py lookup keys of cached pages
FLOOD = 200
QUEUE = "sf-cache-bounds-test"
CACHE_MAXMEMORY = "4mb"  # small, so a test fills it in a blink (an empty Redis uses ~1 MB)


def computed_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """What storefront/settings.py computes for this environment (restored right after)."""
    with monkeypatch.context() as patched:
        for name in ("REDIS_URL", "REDIS_CACHE_URL", "CELERY_BROKER_URL", "MEMCACHED_URL"):
            patched.delenv(name, raising=False)  # defaults unless this test sets them
        patched.delenv("STOREFRONT_SESSION_STORE", raising=False)
        for name, value in {"STOREFRONT_ENV": "test", **env}.items():
            patched.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))


def use_redis(settings, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """Point this test's caches and session store where the environment says."""
    computed = computed_settings(monkeypatch, **env)
    settings.REDIS_BREAKER_COOLDOWN = 0.01
    settings.CACHES = computed["CACHES"]
    settings.SESSION_ENGINE = computed["SESSION_ENGINE"]
    settings.SESSION_CACHE_ALIAS = computed["SESSION_CACHE_ALIAS"]
    return computed


@pytest.fixture
def cache_server(settings, monkeypatch) -> Iterator[RedisServer]:
    """A private Redis as the page cache (REDIS_CACHE_URL), so its keys can be counted."""
    with running_redis() as server:
        use_redis(settings, monkeypatch, REDIS_URL=settings.REDIS_URL, REDIS_CACHE_URL=server.url)
        yield server


def get(client: Client, url: str) -> tuple[int, str, str]:
    """Status, X-Storefront-Cache ("" when the view raised, e.g. a 404) and body."""
    response = client.get(url)
    return response.status_code, response.get(CACHE_HEADER, ""), response.content.decode()


# --- (a) one entry per page, whatever the query string carries --------------------------------


def test_made_up_parameters_add_no_listing_entries(cache_server: RedisServer) -> None:
    ProductFactory(name="Desk Lamp")
    canonical = get(Client(), "/products/?sort=price_asc")

    answers = [get(Client(), f"/products/?sort=price_asc&junk={n}") for n in range(FLOOD)]

    assert canonical[:2] == (200, "MISS")
    assert {(status, state) for status, state, _ in answers} == {(200, "HIT")}
    assert all(body == canonical[2] for _, _, body in answers)  # the canonical page itself
    assert len(cache_server.keys(PAGE_KEYS)) == 1


def test_a_flood_of_made_up_parameters_stores_one_page(settings, cache_server) -> None:
    """From an empty cache: 200 requests, each with its own junk, leave one page entry; the
    page stored is the canonical one (its links carry no junk)."""
    settings.STOREFRONT_PAGE_SIZE = 2
    ProductFactory.create_batch(3)

    states = [get(Client(), f"/products/?junk={n}")[1] for n in range(FLOOD)]
    keys_after_flood = cache_server.keys()
    _, state, body = get(Client(), "/products/")

    assert states == ["MISS"] + ["HIT"] * (FLOOD - 1)
    assert len(cache_server.keys(PAGE_KEYS)) == 1
    assert state == "HIT"
    assert 'href="?page=2"' in body and "junk" not in body
    # Besides the page, what rendering it once stored: 3 version counters (global, catalog,
    # stock), the category list, the count, the page's rows, the menus, 2 cards and the 2
    # hit/miss counters (written when the stats are flushed, which a slow run reaches): 12.
    assert len(keys_after_flood) <= 12, "\n".join(sorted(keys_after_flood))


def test_parameter_order_does_not_make_another_entry(cache_server: RedisServer) -> None:
    ProductFactory(name="Desk Lamp")
    first = get(Client(), "/products/?q=lamp&sort=price_desc&min_price=1")
    second = get(Client(), "/products/?min_price=1&sort=price_desc&q=lamp&utm_source=mail")

    assert (first[1], second[1]) == ("MISS", "HIT")
    assert second[2] == first[2]
    assert len(cache_server.keys(PAGE_KEYS)) == 1


def test_product_page_ignores_every_query_parameter(cache_server: RedisServer) -> None:
    product = ProductFactory(name="Desk Lamp")
    url = product.get_absolute_url()

    states = [get(Client(), f"{url}?junk={n}")[1] for n in range(FLOOD)]

    assert states == ["MISS"] + ["HIT"] * (FLOOD - 1)
    assert get(Client(), url)[:2] == (200, "HIT")
    assert len(cache_server.keys(PAGE_KEYS)) == 1


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("page=abc", 400, "The page number must be a whole number."),
        ("min_price=cheap", 400, "Enter a number."),
        ("after=forged", 400, "That page link is not valid"),
        ("category=no-such-thing", 404, "There is no category called"),
    ],
)
def test_bad_values_are_answered_and_never_stored(
    cache_server: RedisServer, query: str, status: int, message: str
) -> None:
    ProductFactory()
    answers = [get(Client(), f"/products/?{query}&n={n}") for n in range(20)]

    assert {code for code, _, _ in answers} == {status}
    assert not {state for _, state, _ in answers} & {"HIT", "MISS"}  # never from or into it
    assert message in answers[0][2]
    assert cache_server.keys(PAGE_KEYS) == []


def test_login_page_with_a_query_string_is_served_fresh_not_stored(cache_server) -> None:
    """The login page declares no parameters it reads (it reads ?next=): a query string means
    a fresh page, so ?next=/1, /2 ... cannot fill the cache, and ?next= still works."""
    answers = [get(Client(), f"/accounts/login/?next=/orders/{n}/") for n in range(50)]

    assert {(code, state) for code, state, _ in answers} == {(200, "BYPASS")}
    assert 'name="next" value="/orders/7/"' in answers[7][2]
    assert cache_server.keys("*:accounts:page:*") == []
    assert get(Client(), "/accounts/login/")[1] == "MISS"
    assert len(cache_server.keys("*:accounts:page:*")) == 1


# --- (b) the cache evicts; sessions and queued tasks never do -----------------------------------


def test_settings_route_the_cache_apart_from_sessions_and_broker(monkeypatch) -> None:
    durable, evicting = "redis://durable.example:6379/0", "redis://cache.example:6379/0"

    split = computed_settings(monkeypatch, REDIS_URL=durable, REDIS_CACHE_URL=evicting)
    assert split["CACHES"]["default"]["LOCATION"] == evicting
    assert split["CACHES"]["sessions"]["LOCATION"] == durable
    assert split["CELERY_BROKER_URL"] == durable
    assert split["SESSION_CACHE_ALIAS"] == "sessions"

    # One server for everything when no cache URL is given (as before).
    single = computed_settings(monkeypatch, REDIS_URL=durable)
    assert single["CACHES"]["default"]["LOCATION"] == durable
    assert single["CACHES"]["sessions"]["LOCATION"] == durable
    assert single["CELERY_BROKER_URL"] == durable

    # make run's own cache server listens on a unix socket.
    local = computed_settings(
        monkeypatch, REDIS_URL=durable, REDIS_CACHE_URL="unix:///srv/var/run/cache-redis.sock"
    )
    pool = local["CACHES"]["default"]["OPTIONS"]["CONNECTION_POOL_KWARGS"]
    assert pool["connection_class"].__name__ == "BreakerUnixConnection"


def _queue_task(broker_url: str) -> None:
    with celery_app.connection_for_write(broker_url) as connection:
        celery_app.send_task(
            "storefront.ops.tasks.clear_expired_sessions", queue=QUEUE, connection=connection
        )


def _fill(cache_alias: str, megabytes: int) -> list[str]:
    """Write `megabytes` of 64 KB cache entries through Django's cache; their keys, in order."""
    keys = [f"filler:{n}" for n in range(megabytes * 16)]
    for key in keys:
        caches[cache_alias].set(key, b"x" * 65536, timeout=3600)
    return keys


# send_task queues the message even in tests (where tasks otherwise run eagerly): that is the point.
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_filling_the_cache_evicts_cache_entries_never_sessions_or_tasks(
    settings, monkeypatch
) -> None:
    shopper = UserFactory(username="ada")
    ProductFactory(name="Desk Lamp")
    with (
        running_redis("--maxmemory-policy", "noeviction") as durable,
        running_redis("--maxmemory", CACHE_MAXMEMORY, "--maxmemory-policy", "allkeys-lru") as cache,
    ):
        computed = use_redis(
            settings,
            monkeypatch,
            REDIS_URL=durable.url,
            REDIS_CACHE_URL=cache.url,
            STOREFRONT_SESSION_STORE="cache",  # sessions live in Redis only: the hardest case
        )
        browser = Client()
        browser.force_login(shopper)
        _queue_task(computed["CELERY_BROKER_URL"])
        assert get(Client(), "/products/")[1] == "MISS"

        keys = _fill("default", megabytes=12)  # three times the cache's maxmemory

        # The cache stayed within its memory by evicting least recently used entries ...
        assert cache.info("stats")["evicted_keys"] > 0
        assert cache.info("memory")["used_memory"] <= cache.info("memory")["maxmemory"]
        assert len(cache.keys("*filler:*")) < len(keys) / 2
        assert caches["default"].get(keys[-1]) == b"x" * 65536
        # ... and still serves pages (the evicted page is rebuilt, then a hit again).
        assert get(Client(), "/products/")[1] in ("MISS", "HIT")
        assert get(Client(), "/products/")[1] == "HIT"
        # The session and the queued task were on the other server: untouched.
        assert durable.info("stats")["evicted_keys"] == 0
        response = browser.get("/dashboard/")
        assert response.status_code == 200
        assert f'class="nav-user">{shopper.display_name}<' in response.content.decode()
        with durable.client() as client:
            assert client.llen(QUEUE) == 1


def test_another_database_number_on_the_cache_server_does_not_protect_sessions(
    settings, monkeypatch
) -> None:
    """Why sessions need a server of their own: maxmemory-policy is per server, so sessions on
    /1 of the evicting server are evicted by a cache flood on /0."""
    shopper = UserFactory(username="ada")
    with running_redis("--maxmemory", CACHE_MAXMEMORY, "--maxmemory-policy", "allkeys-lru") as one:
        use_redis(
            settings,
            monkeypatch,
            REDIS_URL=one.url.replace("/0", "/1"),
            REDIS_CACHE_URL=one.url,
            STOREFRONT_SESSION_STORE="cache",
        )
        browser = Client()
        browser.force_login(shopper)
        assert browser.get("/dashboard/").status_code == 200

        _fill("default", megabytes=12)

        assert one.info("stats")["evicted_keys"] > 0
        # The session was evicted from /1: the customer is signed out (sent to the login).
        response = browser.get("/dashboard/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
