"""The listing's pages: numbered first, then keyset cursors (storefront/pagination.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from storefront import caching
from storefront.catalog.models import Product
from storefront.catalog.selectors import PRODUCT_SORTS
from storefront.pagination import MAX_NUMBERED_PAGES
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

PAGE_SIZE = 4
# Enough for every numbered page and three cursor pages beyond them (the last one partial).
PRODUCT_COUNT = PAGE_SIZE * MAX_NUMBERED_PAGES + 2 * PAGE_SIZE + 3


@pytest.fixture(scope="module", autouse=True)
def _vacuum_products_afterwards(django_db_blocker) -> Iterator[None]:
    """These tests insert (and roll back) about a thousand products. Their dead rows and GIN
    pending-list entries would make later plan-sensitive tests (test_selectors' GIN check)
    see a bloated table, so the module leaves the table vacuumed (outside any transaction)."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM catalog_product")


@pytest.fixture
def small_pages(settings) -> None:
    settings.STOREFRONT_PAGE_SIZE = PAGE_SIZE


@pytest.fixture
def catalogue(small_pages: None) -> list[Product]:
    """Products with many ties in every sort key, so only the id tiebreaker orders them."""
    category = CategoryFactory()
    products = [
        ProductFactory(
            name=f"Lamp {i % 5}",
            slug=f"lamp-{i}",
            price=Decimal(10 + i % 3),
            category=category,
        )
        for i in range(PRODUCT_COUNT)
    ]
    # Three creation instants for all of them: "newest" is full of ties too.
    base = timezone.now() - dt.timedelta(days=1)
    for i, product in enumerate(products):
        Product.objects.filter(pk=product.pk).update(created_at=base + dt.timedelta(hours=i % 3))
    return products


def get(client: Client, url: str):
    """A freshly rendered page (with its context), never the cached copy of an earlier one."""
    caching.clear()
    return client.get(url)


def slugs(response) -> list[str]:
    return [p.slug for p in response.context["products"]]


def expected(sort: str) -> list[str]:
    return list(Product.objects.order_by(*PRODUCT_SORTS[sort]).values_list("slug", flat=True))


def walk(client: Client, start: str, *, direction: str = "next") -> list[list[str]]:
    """Every page from `start`, following the `direction` links to the end."""
    pages, url = [], start
    while url:
        response = get(client, url)
        assert response.status_code == 200, (url, response.content.decode()[:500])
        pages.append(slugs(response))
        page = response.context["page"]
        link = page.next_url if direction == "next" else page.previous_url
        url = f"/products/{link}" if link else None
        assert len(pages) < 100
    return pages


def deep_url(client: Client, query: str = "") -> str:
    """The first cursor page: the "Next" link of the last numbered page."""
    separator = "&" if query else ""
    response = get(client, f"/products/?{query}{separator}page={MAX_NUMBERED_PAGES}")
    assert response.status_code == 200
    return f"/products/{response.context['page'].next_url}"


def test_page_one_is_numbered_with_a_bounded_count(client: Client, catalogue) -> None:
    response = get(client, "/products/?sort=price_asc")
    page = response.context["page"]
    assert slugs(response) == expected("price_asc")[:PAGE_SIZE]
    assert page.number == 1
    assert page.count is None  # more than the numbered pages hold: not counted further
    assert [link.number for link in page.numbers] == list(range(1, MAX_NUMBERED_PAGES + 1))
    body = response.content.decode()
    assert f"More than {PAGE_SIZE * MAX_NUMBERED_PAGES} products" in body
    assert 'href="?sort=price_asc&amp;page=2"' in body


def test_small_listing_counts_exactly(client: Client, small_pages) -> None:
    ProductFactory.create_batch(PAGE_SIZE + 1)
    response = get(client, "/products/?page=2")
    page = response.context["page"]
    assert page.count == PAGE_SIZE + 1
    assert (page.has_previous, page.has_next) == (True, False)
    assert f"{PAGE_SIZE + 1} products" in response.content.decode()
    assert "Page 2 of 2" in response.content.decode()


@pytest.mark.parametrize("sort", sorted(PRODUCT_SORTS))
def test_a_full_walk_has_no_duplicates_or_gaps(client: Client, catalogue, sort: str) -> None:
    pages = walk(client, f"/products/?sort={sort}")
    assert [item for page in pages for item in page] == expected(sort)
    assert [len(page) for page in pages] == [PAGE_SIZE] * (len(pages) - 1) + [3]
    # Backwards from the last page by "Previous" cursors: the same pages in reverse (the walk
    # back past the numbered pages stays on cursors and ends at the very first row).
    last = get(client, f"/products/?sort={sort}&page=1")
    url = None
    for _ in pages[1:]:
        link = last.context["page"].next_url
        url = f"/products/{link}"
        last = get(client, url)
    back = walk(client, url, direction="previous")
    assert [item for page in reversed(back) for item in page] == expected(sort)


def test_deep_page_then_next_then_previous_returns_the_same_items(
    client: Client, catalogue
) -> None:
    deep = get(client, deep_url(client, "sort=name"))
    assert deep.context["page"].by_cursor
    assert deep.context["page"].number == MAX_NUMBERED_PAGES + 1
    start = PAGE_SIZE * MAX_NUMBERED_PAGES
    assert slugs(deep) == expected("name")[start : start + PAGE_SIZE]
    following = get(client, f"/products/{deep.context['page'].next_url}")
    assert following.context["page"].number == MAX_NUMBERED_PAGES + 2
    back = get(client, f"/products/{following.context['page'].previous_url}")
    assert slugs(back) == slugs(deep)
    assert back.context["page"].number == MAX_NUMBERED_PAGES + 1
    # One more step back lands on the last numbered page's rows.
    numbered = get(client, f"/products/?sort=name&page={MAX_NUMBERED_PAGES}")
    before = get(client, f"/products/{deep.context['page'].previous_url}")
    assert slugs(before) == slugs(numbered)
    body = deep.content.decode()
    assert 'href="?sort=name">First page</a>' in body
    assert f"Page {MAX_NUMBERED_PAGES + 1}" in body


def test_filters_travel_with_the_cursor(client: Client, catalogue) -> None:
    other = CategoryFactory(slug="mugs")
    ProductFactory.create_batch(3, category=other)
    category = catalogue[0].category.slug
    pages = walk(client, f"/products/?category={category}&sort=price_desc&min_price=11")
    shown = [item for page in pages for item in page]
    assert shown == list(
        Product.objects.filter(category__slug=category, price__gte=11)
        .order_by(*PRODUCT_SORTS["price_desc"])
        .values_list("slug", flat=True)
    )


def test_deep_page_sql_has_no_offset_and_no_count(client: Client, catalogue) -> None:
    url = deep_url(client, "sort=newest")
    with CaptureQueriesContext(connection) as ctx:
        response = get(client, url)
    assert response.status_code == 200
    product_queries = [q["sql"] for q in ctx.captured_queries if "catalog_product" in q["sql"]]
    assert len(product_queries) == 1
    [sql] = product_queries
    assert "OFFSET" not in sql.upper()
    assert "COUNT(" not in sql.upper()
    assert f"LIMIT {PAGE_SIZE + 1}" in sql


def test_numbered_page_counts_at_most_the_numbered_rows(client: Client, catalogue) -> None:
    with CaptureQueriesContext(connection) as ctx:
        get(client, "/products/?page=3")
    [count_sql] = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"]]
    assert f"LIMIT {PAGE_SIZE * MAX_NUMBERED_PAGES + 1}" in count_sql


def test_cursor_pages_are_cached_for_anonymous_visitors(client: Client, catalogue) -> None:
    url = deep_url(client)
    assert client.get(url)["X-Storefront-Cache"] == "MISS"
    assert client.get(url)["X-Storefront-Cache"] == "HIT"


def tampered(url: str) -> str:
    cursor = parse_qs(urlsplit(url).query)["after"][0]
    payload, signature = cursor.split(":")
    # The same position one row further on, re-encoded but not re-signed.
    return url.replace(cursor.replace(":", "%3A"), f"{payload[:-2]}AA:{signature}")


@pytest.mark.parametrize(
    "mangle",
    [
        tampered,
        lambda url: url.replace("after=", "after=x"),
        lambda url: url.split("after=")[0] + "after=not-a-cursor",
        lambda url: url.split("after=")[0] + "after=" + "A" * 5000,
        lambda url: url.split("after=")[0] + "after=",
        lambda url: url.replace("sort=name", "sort=price_asc"),  # another sort's cursor
        lambda url: url + "&page=2",
        lambda url: url.replace("after=", "before=") + "&after=x",
        lambda url: url + "&after=x",
    ],
)
def test_bad_cursors_are_400_with_a_message(client: Client, catalogue, mangle) -> None:
    url = mangle(deep_url(client, "sort=name"))
    response = get(client, url)
    assert response.status_code == 400, url
    body = response.content.decode()
    assert "We could not use those filters" in body
    assert any(
        text in body for text in ("That page link", "Give only one of", "Give “after” only once")
    ), body


@pytest.mark.parametrize(
    ("page", "status", "message"),
    [
        ("two", 400, "The page number must be a whole number."),
        ("0", 400, f"Page numbers go from 1 to {MAX_NUMBERED_PAGES}"),
        (str(MAX_NUMBERED_PAGES + 1), 400, f"Page numbers go from 1 to {MAX_NUMBERED_PAGES}"),
        ("99999999999999999999999", 400, "Page numbers go from 1"),
        ("3", 404, "That page does not exist: there are 1 page(s) of results."),
    ],
)
def test_bad_page_numbers(client: Client, page: str, status: int, message: str) -> None:
    ProductFactory()
    response = get(client, f"/products/?page={page}")
    assert response.status_code == status
    assert message in response.content.decode()


def test_search_by_relevance_has_numbered_pages_only(client: Client, catalogue) -> None:
    response = get(client, f"/products/?q=lamp&page={MAX_NUMBERED_PAGES}")
    page = response.context["page"]
    if connection.vendor != "postgresql":
        # Without full-text search there is no rank: a plain sort, pages on by cursor.
        assert page.has_next
        return
    assert not page.has_next
    assert page.truncated
    assert "Best-match results stop after" in response.content.decode()
    cursor = get(client, deep_url(client, "q=lamp&sort=newest")).context["page"].next_url
    assert cursor  # another sort pages the same search by cursor
    relevance = get(client, "/products/" + cursor.replace("sort=newest", "sort=relevance"))
    assert relevance.status_code == 400
    assert "numbered pages only" in relevance.content.decode()


def test_an_emptied_deep_page_links_back_to_the_start(client: Client, catalogue) -> None:
    url = deep_url(client)
    # Every product past the numbered pages is withdrawn after the link was made.
    Product.objects.exclude(slug__in=expected("newest")[: PAGE_SIZE * MAX_NUMBERED_PAGES]).update(
        is_active=False
    )
    caching.clear()
    response = get(client, url)
    assert response.status_code == 200
    assert "No more products here" in response.content.decode()
    assert response.context["page"].first_url == "?"
