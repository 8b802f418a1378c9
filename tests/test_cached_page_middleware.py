"""CachedPageMiddleware (storefront/cache_pages.py): a cached page for a request without cookies
is answered before sessions, CSRF, auth and messages, with the same body and headers the view's
wrapper gives, and everything else still goes the long way."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from storefront import caching
from storefront.cache_pages import CACHE_HEADER
from storefront.ops.tests.test_metrics import scrape, value
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

# What the middleware above CachedPageMiddleware adds (SecurityMiddleware, X-Frame-Options).
SECURITY_HEADERS = ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy")


def test_a_cookieless_hit_is_the_same_page_with_the_same_headers(client: Client) -> None:
    ProductFactory.create_batch(3)
    miss = client.get("/products/?sort=price_asc&junk=1")
    assert miss[CACHE_HEADER] == "MISS"

    with CaptureQueriesContext(connection) as queries:
        hit = Client().get("/products/?sort=price_asc")
    assert hit.status_code == 200
    assert hit[CACHE_HEADER] == "HIT"
    assert hit.content == miss.content
    assert len(queries) == 0
    assert not hit.cookies  # no session, no CSRF cookie
    assert hit["Vary"] == "Cookie"
    assert hit["Content-Length"] == str(len(hit.content))
    assert all(hit.has_header(h) for h in SECURITY_HEADERS)
    for header in (*SECURITY_HEADERS, "Content-Type", "Cache-Control"):
        assert hit.get(header) == miss.get(header), header


def test_a_request_with_a_cookie_is_served_by_the_view_wrapper(client: Client) -> None:
    ProductFactory()
    client.get("/products/")
    # A CSRF cookie alone: still a cacheable visitor, answered from the cache by the wrapper.
    client.cookies["csrftoken"] = "a" * 32
    response = client.get("/products/")
    assert response[CACHE_HEADER] == "HIT"
    assert all(response.has_header(h) for h in SECURITY_HEADERS)


def test_a_page_with_a_form_token_still_gets_this_clients_token(client: Client) -> None:
    Client().get("/accounts/login/")  # cached, with the placeholder where the token goes
    response = client.get("/accounts/login/")
    assert response[CACHE_HEADER] == "HIT"
    assert "csrftoken" in response.cookies  # CsrfViewMiddleware ran: the token is this client's
    assert 'name="csrfmiddlewaretoken" value="' in response.content.decode()
    assert "__storefront_csrf_token_placeholder__" not in response.content.decode()


def test_a_product_page_is_answered_early_and_sets_no_cookie(client: Client) -> None:
    product = ProductFactory(stock=5)
    url = f"/products/{product.slug}/"
    assert client.get(url)[CACHE_HEADER] == "MISS"
    with CaptureQueriesContext(connection) as queries:
        response = Client().get(url)
    assert response[CACHE_HEADER] == "HIT"
    assert len(queries) == 0
    assert not response.cookies


def test_a_miss_is_looked_up_once(client: Client) -> None:
    ProductFactory()
    caching.reset_stats()
    assert client.get("/products/?sort=name")[CACHE_HEADER] == "MISS"
    # The page (once: the middleware's lookup is handed to the view's wrapper), the categories,
    # the count, the page's rows, the menus and the card.
    assert caching.stats()["catalog"]["misses"] == 6


def test_an_unknown_host_is_refused_even_for_a_cached_page(client: Client) -> None:
    ProductFactory()
    client.get("/products/")
    response = Client(HTTP_HOST="evil.example").get("/products/")
    assert response.status_code == 400


def test_early_hits_are_counted_under_their_view(client: Client) -> None:
    ProductFactory()
    client.get("/products/")
    before = scrape(client)
    for _ in range(3):
        assert Client().get("/products/")[CACHE_HEADER] == "HIT"
    after = scrape(client)
    name = "storefront_page_cache_responses_total"
    view = "catalog:product_list"
    assert (
        value(after, name, view=view, result="HIT") - value(before, name, view=view, result="HIT")
        == 3
    )
    requests = "storefront_http_requests_total"
    assert (
        value(after, requests, view=view, method="GET", status="200")
        - value(before, requests, view=view, method="GET", status="200")
        == 3
    )


@pytest.mark.parametrize(("ttl", "stores", "second"), [(0, 0, "MISS"), (300, 1, "HIT")])
def test_the_page_cache_off_stores_nothing(
    client: Client, settings, monkeypatch, ttl: int, stores: int, second: str
) -> None:
    """STOREFRONT_CACHE_TTL_PAGES=0: a miss renders the page and writes nothing back (no
    round trip to set a key that would expire at once); with a TTL the miss stores it once."""
    settings.STOREFRONT_CACHE_TTL_PAGES = ttl
    ProductFactory()
    stored = []
    real_store_in = caching.store_in

    def spy(slot: caching.Slot, value: object, timeout: int) -> None:
        stored.append(timeout)
        real_store_in(slot, value, timeout)

    monkeypatch.setattr(caching, "store_in", spy)
    first = client.get("/products/?sort=name")
    again = Client().get("/products/?sort=name")
    assert (first.status_code, first[CACHE_HEADER]) == (200, "MISS")
    assert (again.status_code, again[CACHE_HEADER]) == (200, second)
    assert again.content == first.content
    assert stored == [ttl] * stores
