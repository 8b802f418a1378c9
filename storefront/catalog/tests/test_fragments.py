"""Cached catalog fragments (storefront/catalog/fragments.py) and the per-page versions snapshot
and prefetch (storefront/caching.py): what a visitor sees stays right after every change.

Signed-in visitors never get the cached page, so the fragments alone decide what they see:
these tests look at the pages as a signed-in customer sees them, after warming the fragments.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from storefront import caching
from storefront.catalog import selectors
from storefront.catalog.services import update_product
from storefront.orders.services import OrderItem, place_order
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(client: Client) -> Client:
    client.force_login(UserFactory())
    return client


def _body(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    assert response["X-Storefront-Cache"] == "BYPASS"  # signed in: rendered, not the page cache
    return response.content.decode()


def test_a_sale_into_the_low_range_shows_on_the_cached_card(
    customer: Client, settings, django_capture_on_commit_callbacks
) -> None:
    settings.STOREFRONT_LOW_STOCK_THRESHOLD = 5
    lamp = ProductFactory(name="Brass Lamp", stock=8)
    assert "Only" not in _body(customer, "/products/")  # the card is cached now

    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=UserFactory(), items=[OrderItem(product_id=lamp.pk, quantity=5)])
    assert "Only 3 left" in _body(customer, "/products/")

    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=UserFactory(), items=[OrderItem(product_id=lamp.pk, quantity=3)])
    assert "Sold out" in _body(customer, "/products/")


def test_an_edited_product_and_a_renamed_category_show_everywhere(
    customer: Client, django_capture_on_commit_callbacks
) -> None:
    tools = CategoryFactory(name="Tools", slug="tools")
    shown = ProductFactory(name="Oak Mallet", category=tools, price=Decimal("12.00"))
    other = ProductFactory(name="Ash Chisel", category=tools)
    listing = f"/products/?category={tools.slug}"
    assert "Oak Mallet" in _body(customer, listing)
    assert "Oak Mallet" in _body(customer, f"/products/{other.slug}/")  # a related card

    with django_capture_on_commit_callbacks(execute=True):
        update_product(product=shown, name="Beech Mallet", price=Decimal("14.50"))
    body = _body(customer, listing)
    assert "Beech Mallet" in body and "$14.50" in body and "Oak Mallet" not in body
    assert "Beech Mallet" in _body(customer, f"/products/{other.slug}/")

    with django_capture_on_commit_callbacks(execute=True):
        tools.name = "Hand Tools"
        tools.save()
    body = _body(customer, listing)
    # The card's category line, the filter's option and the navigation.
    assert body.count("Hand Tools") >= 3, body
    assert ">Tools<" not in body


def test_a_related_product_sold_out_shows_on_the_product_page(
    customer: Client, settings, django_capture_on_commit_callbacks
) -> None:
    settings.STOREFRONT_LOW_STOCK_THRESHOLD = 5
    category = CategoryFactory()
    page = ProductFactory(category=category, stock=50)
    related = ProductFactory(category=category, name="Linen Apron", stock=2)
    url = f"/products/{page.slug}/"
    assert "Only 2 left" in _body(customer, url)

    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=UserFactory(), items=[OrderItem(product_id=related.pk, quantity=2)])
    assert "Sold out" in _body(customer, url)


@pytest.mark.parametrize("shown", [3, 24])
def test_cards_come_with_the_page_rows_or_in_one_lookup_and_are_rendered_once(
    client: Client, settings, shown: int
) -> None:
    settings.STOREFRONT_CACHE_TTL_PAGES = 0  # the page is never stored: rendered each time
    ProductFactory.create_batch(shown)

    def listing_stats() -> dict:
        caching.reset_stats()
        response = client.get("/products/")
        assert response.content.decode().count('class="product-card"') == shown
        return caching.stats()["catalog"]

    def expected(hits: int, misses: int) -> dict:
        return {"hits": hits, "misses": misses, "hit_ratio": round(hits / (hits + misses), 4)}

    # Nothing cached: the page, categories, count, rows, menus and every card are misses.
    assert listing_stats() == expected(0, 5 + shown)
    # The page (a miss: never stored); the categories, the count, the page's rows, which carry
    # its cards, and the menus: found, and no card is read on its own.
    assert listing_stats() == expected(4, 1)
    # The rows' entry gone (evicted): the cards are read from their own entries, all found in
    # one round trip (none rendered), and stored with the rows again.
    filters = selectors.listing_filters_key(category="", search="", min_price=None, max_price=None)
    caching.cache.delete(selectors.listing_page_rows_key(filters=filters, sort="", page=1))
    assert listing_stats() == expected(3 + shown, 2)
    assert listing_stats() == expected(4, 1)


def test_cached_listing_rows_follow_every_change(
    client: Client, settings, django_capture_on_commit_callbacks
) -> None:
    """The page cache off: each listing is rendered from its cached rows (no query), and a
    sale, an edit, a new product and a withdrawn one each show on the very next request."""
    settings.STOREFRONT_CACHE_TTL_PAGES = 0
    lamp = ProductFactory(name="Brass Lamp", stock=2)
    stool = ProductFactory(name="Pine Stool")
    url = "/products/?sort=newest"

    def listing() -> str:
        response = client.get(url)
        assert response.status_code == 200 and response["X-Storefront-Cache"] == "MISS"
        return response.content.decode()

    assert "Brass Lamp" in listing()
    with CaptureQueriesContext(connection) as queries:
        assert "Pine Stool" in listing()
    assert len(queries) == 0  # rows, count, categories and cards all cached

    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=UserFactory(), items=[OrderItem(product_id=lamp.pk, quantity=2)])
    assert "Sold out" in listing()
    with django_capture_on_commit_callbacks(execute=True):
        update_product(product=stool, name="Pine Bench")
    body = listing()
    assert "Pine Bench" in body and "Pine Stool" not in body
    with django_capture_on_commit_callbacks(execute=True):
        ProductFactory(name="Cedar Box")
    assert "Cedar Box" in listing()
    with django_capture_on_commit_callbacks(execute=True):
        update_product(product=lamp, is_active=False)
    assert "Brass Lamp" not in listing()


@pytest.mark.parametrize("shown", [3, 24])
def test_a_signed_in_listing_is_its_shared_content_in_one_lookup(
    customer: Client, shown: int
) -> None:
    ProductFactory.create_batch(shown)
    first = _body(customer, "/products/?sort=name")
    caching.reset_stats()
    second = _body(customer, "/products/?sort=name")
    assert second.count('class="product-card"') == shown
    assert caching.stats()["catalog"] == {"hits": 1, "misses": 0, "hit_ratio": 1.0}
    # The visitor's own header around it (the logout form's token differs per response).
    assert "Log out" in second
    strip = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert strip.sub("", second) == strip.sub("", first)


def test_the_shared_content_holds_nothing_of_the_visitor(client: Client) -> None:
    ProductFactory(name="Pine Stool")
    alice = Client()
    alice.force_login(UserFactory(username="alice-shopper", full_name="Alice Archer"))
    assert "Pine Stool" in _body(alice, "/products/")  # stored by alice's request
    bob = Client()
    bob.force_login(UserFactory(username="bob-shopper", full_name="Bob Baker"))
    body = _body(bob, "/products/")  # bob gets the stored content
    assert "Pine Stool" in body
    assert "alice" not in body.lower() and "bob" in body.lower()
    anonymous = client.get("/products/").content.decode()
    assert "alice" not in anonymous.lower() and "bob" not in anonymous.lower()


def test_an_unknown_category_in_a_bad_query_selects_no_option(client: Client) -> None:
    CategoryFactory(name="Garden", slug="garden")
    response = client.get("/products/?category=nowhere&min_price=x")
    assert response.status_code == 400
    body = response.content.decode()
    assert 'value="garden">Garden</option>' in body
    assert " selected>" not in body.split('id="id_category"')[1].split("</select>")[0]


def test_the_snapshot_reads_each_counter_once_and_forgets_what_it_bumps() -> None:
    from django.core.cache import cache

    with caching.versions_snapshot():
        first = caching.make_key("catalog", "page", "/")
        # Another process bumps the namespace meanwhile: this page keeps what it started with.
        cache.incr("ver:ns:catalog")
        assert caching.make_key("catalog", "page", "/") == first
        # A bump in this thread (its own write, committed): forgotten, so read again.
        caching.bump_namespace("catalog")
        after_own_bump = caching.make_key("catalog", "page", "/")
    assert after_own_bump not in (first, caching.make_key("catalog", "page", "/", scopes=["x"]))
    assert caching.make_key("catalog", "page", "/") == after_own_bump


def test_prefetched_entries_are_used_once_then_read_again() -> None:
    key = caching.make_key("catalog", "probe")
    caching.store(key, "old", 60)
    with caching.versions_snapshot():
        caching.prefetch([key])
        caching.store(key, "new", 60)  # written after the prefetch
        assert caching.get("catalog", key) == "old"  # what the page read ahead
        assert caching.get("catalog", key) == "new"  # later reads go to the cache
    caching.prefetch([key])  # outside a snapshot: nothing is kept
    caching.store(key, "newer", 60)
    assert caching.get("catalog", key) == "newer"


def test_with_the_cache_answering_one_shared_empty_dict_each_page_keeps_its_own_cards(
    customer: Client, monkeypatch
) -> None:
    """django-redis answers get_many with the same {} object whenever Redis fails (errors
    ignored): filling it would hand one page's cards to the next."""
    from django.core.cache import cache

    shared: dict = {}
    monkeypatch.setattr(cache, "get_many", lambda keys, **kwargs: shared)
    garden, kitchen = CategoryFactory(slug="garden"), CategoryFactory(slug="kitchen")
    ProductFactory(name="Rose Shears", category=garden)
    ProductFactory(name="Oak Spoon", category=kitchen)
    first = _body(customer, "/products/?category=garden")
    second = _body(customer, "/products/?category=kitchen")
    assert "Rose Shears" in first and "Oak Spoon" not in first
    assert "Oak Spoon" in second and "Rose Shears" not in second
    assert shared == {}
