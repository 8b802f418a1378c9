"""The listing's pages: numbered first, then keyset cursors (storefront/pagination.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.http import QueryDict
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from storefront import caching, pagination
from storefront.catalog.models import Product
from storefront.catalog.selectors import PRODUCT_SORTS, listing_keyset, product_listing_rows
from storefront.catalog.services import update_product
from storefront.keyset import Keyset, NotKeysetOrderable
from storefront.pagination import MAX_NUMBERED_PAGES, paginate
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
    assert 'href="?sort=price_asc&amp;page=2"' in body
    assert "Page 1</span>" in body  # not "Page 1 of 5": there are more


def analyze_products() -> None:
    """Fresh planner statistics (ANALYZE counts this transaction's own rows)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_product")


def test_a_long_listing_shows_the_planner_estimate_on_postgresql(client: Client, catalogue) -> None:
    if connection.vendor == "postgresql":
        analyze_products()
    with CaptureQueriesContext(connection) as ctx:
        response = get(client, "/products/?sort=price_asc")
    page = response.context["page"]
    body = response.content.decode()
    explains = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("EXPLAIN")]
    if connection.vendor != "postgresql":
        # No planner estimate to ask: the bounded count's honest lower bound.
        assert page.estimated_count is None
        assert explains == []
        assert f"More than {PAGE_SIZE * MAX_NUMBERED_PAGES} products" in body
        return
    assert page.estimated_count == PRODUCT_COUNT  # fresh statistics of a small table: exact
    assert f"About {PRODUCT_COUNT} products" in body
    assert len(explains) == 1
    assert "LIMIT" not in explains[0]  # the estimate of all matches, not of a page
    # Cached per filter set: another page or sort of the same listing does not plan it again.
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/products/?sort=name&page=2").status_code == 200
    assert not [q for q in ctx.captured_queries if q["sql"].startswith("EXPLAIN")]


def test_a_large_estimate_is_rounded_with_a_thousands_separator(
    client: Client, small_pages
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("planner estimates are PostgreSQL's")
    category = CategoryFactory()
    Product.objects.bulk_create(ProductFactory.build_batch(2_345, category=category))
    analyze_products()
    body = get(client, "/products/").content.decode()
    assert "About 2,300 products" in body


@pytest.mark.parametrize(
    ("estimate", "shown"),
    [
        (98_734, 99_000),
        (1_234_567, 1_200_000),
        (135, 140),
        (PAGE_SIZE * MAX_NUMBERED_PAGES + 1, PAGE_SIZE * MAX_NUMBERED_PAGES + 1),
        # Statistics older than the rows (no ANALYZE since a bulk load) can say fewer rows than
        # were just counted: no estimate is shown then, only "More than ...".
        (PAGE_SIZE * MAX_NUMBERED_PAGES, None),
        (0, None),
        (None, None),
    ],
)
def test_estimates_are_rounded_and_never_below_the_count(
    catalogue, estimate: int | None, shown: int | None
) -> None:
    page = paginate(
        Product.objects.order_by(*PRODUCT_SORTS["newest"]),
        params=QueryDict(),
        per_page=PAGE_SIZE,
        estimate_count=lambda: estimate,
    )
    assert page.count is None
    assert page.estimated_count == shown


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
    assert "We could not open that page" in body
    assert any(
        text in body for text in ("That page link", "Give only one of", "Give “after” only once")
    ), body


@pytest.mark.parametrize(
    ("page", "status", "message"),
    [
        ("two", 400, "The page number must be a whole number."),
        ("abc", 400, "The page number must be a whole number."),
        ("0", 400, "Page numbers start at 1."),
        ("3", 404, "There is no page 3; the last page is 1."),
        ("6", 404, "There is no page 6; the last page is 1."),
        ("99999", 404, "There is no page 99999; the last page is 1."),
        ("99999999999999999999999", 404, "There is no page 99999999999999999999999; the last"),
    ],
)
def test_bad_page_numbers(client: Client, page: str, status: int, message: str) -> None:
    ProductFactory()
    response = get(client, f"/products/?page={page}")
    assert response.status_code == status
    body = response.content.decode()
    assert message in body
    heading = "We could not open that page" if status == 400 else "Page not found"
    assert heading in body


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


# --- ?page=N past the numbered pages (bookmarks) ------------------------------------------------


def jump(client: Client, url: str):
    """The redirect a deep ?page=N answers, and the page it leads to."""
    redirect = get(client, url)
    assert redirect.status_code == 302, (url, redirect.status_code)
    location = redirect["Location"]
    assert location.startswith("/products/?"), location
    return location, get(client, location)


@pytest.mark.parametrize("sort", sorted(PRODUCT_SORTS))
def test_a_bookmarked_deep_page_redirects_to_its_cursor_page(
    client: Client, catalogue, sort: str
) -> None:
    walked = walk(client, f"/products/?sort={sort}")
    for number in range(MAX_NUMBERED_PAGES + 1, len(walked) + 1):
        location, response = jump(client, f"/products/?sort={sort}&page={number}")
        query = parse_qs(urlsplit(location).query)
        assert set(query) == {"sort", "after"}  # the filters kept, the page number gone
        assert slugs(response) == walked[number - 1]
        assert response.context["page"].number == number
        assert f"Page {number}" in response.content.decode()


def test_a_deep_page_keeps_the_filters(client: Client, catalogue) -> None:
    ProductFactory.create_batch(3, category=CategoryFactory(slug="mugs"), price=Decimal("11"))
    category = catalogue[0].category.slug
    query = f"category={category}&sort=price_desc"
    walked = walk(client, f"/products/?{query}")
    assert len(walked) > MAX_NUMBERED_PAGES
    number = MAX_NUMBERED_PAGES + 1
    location, response = jump(client, f"/products/?{query}&page={number}")
    assert parse_qs(urlsplit(location).query)["category"] == [category]
    assert slugs(response) == walked[number - 1]


def test_the_jump_is_one_bounded_query(client: Client, catalogue) -> None:
    get(client, "/products/")  # the category list, cached
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/products/?page={MAX_NUMBERED_PAGES + 1}")
    assert response.status_code == 302
    [sql] = [q["sql"] for q in ctx.captured_queries]
    skipped = PAGE_SIZE * MAX_NUMBERED_PAGES
    # The last row of page 5 (its position is page 6's cursor) and one more (page 6 exists).
    assert f"LIMIT 2 OFFSET {skipped - 1}" in sql
    assert "COUNT(" not in sql.upper()
    assert "catalog_category" not in sql  # ordering columns only, no join


def test_a_page_past_the_end_is_a_404_naming_the_last_page(client: Client, catalogue) -> None:
    last = -(-PRODUCT_COUNT // PAGE_SIZE)
    response = get(client, f"/products/?page={last + 1}")
    assert response.status_code == 404
    body = response.content.decode()
    assert f"There is no page {last + 1}; the last page is {last}." in body
    assert 'class="site-header"' in body  # the site's own 404 page
    # A listing that ends exactly where the page would start.
    Product.objects.filter(pk__in=[p.pk for p in catalogue[: PRODUCT_COUNT % PAGE_SIZE]]).delete()
    response = get(client, f"/products/?page={last}")
    assert response.status_code == 404
    assert f"There is no page {last}; the last page is {last - 1}." in response.content.decode()


def test_pages_too_deep_to_jump_to_are_a_404_that_says_so(
    client: Client, catalogue, monkeypatch
) -> None:
    # As if the catalogue were 2,400+ rows long: page 7 would skip more than the jump bound.
    monkeypatch.setattr(pagination, "MAX_JUMP_ROWS", PAGE_SIZE * MAX_NUMBERED_PAGES)
    if connection.vendor == "postgresql":
        analyze_products()
    with CaptureQueriesContext(connection) as ctx:
        response = get(client, f"/products/?page={MAX_NUMBERED_PAGES + 2}")
    assert response.status_code == 404
    body = response.content.decode()
    assert (
        f"Page {MAX_NUMBERED_PAGES + 2} cannot be opened by its number: page numbers go up to "
        f"{MAX_NUMBERED_PAGES + 1}; from there, follow the “Next” links."
    ) in body
    if connection.vendor == "postgresql":
        pages = -(-PRODUCT_COUNT // PAGE_SIZE)
        assert f"This listing has about {PRODUCT_COUNT} items (about {pages} pages)." in body
    sqls = " ".join(q["sql"] for q in ctx.captured_queries).upper()
    assert "OFFSET" not in sqls  # nothing scanned beyond the bounded count
    assert f"LIMIT {PAGE_SIZE * MAX_NUMBERED_PAGES + 1}" in sqls
    # Within the bound, still a redirect; and a listing shorter than the bound is counted.
    assert get(client, f"/products/?page={MAX_NUMBERED_PAGES + 1}").status_code == 302
    response = get(client, "/products/?min_price=12&page=99999")
    assert response.status_code == 404
    assert "There is no page 99999; the last page is 3." in response.content.decode()


def test_best_match_has_no_pages_past_the_numbered_ones(client: Client, catalogue) -> None:
    response = get(client, f"/products/?q=lamp&page={MAX_NUMBERED_PAGES + 1}")
    if connection.vendor != "postgresql":
        assert response.status_code == 302  # no rank without full-text search: a plain sort
        return
    assert response.status_code == 404
    assert "numbered pages only" in response.content.decode()


@pytest.mark.parametrize("search", ["", "lamp"])
@pytest.mark.parametrize("sort", ["", "relevance", *PRODUCT_SORTS])
def test_the_listing_keyset_is_the_querysets_own(sort: str, search: str) -> None:
    """selectors.listing_keyset spares a cached page building its queryset: it must name the
    very keyset the queryset would (or none, where the listing is ranked by relevance)."""
    queryset = product_listing_rows(search=search, sort=sort)
    try:
        expected_keyset = Keyset.of(queryset)
    except NotKeysetOrderable:
        expected_keyset = None
    assert listing_keyset(sort=sort, search=search) == expected_keyset


def test_cursor_page_rows_are_cached_and_follow_every_change(
    client: Client, catalogue, settings, django_capture_on_commit_callbacks
) -> None:
    """The page cache off: a cursor page's rows are cached like a numbered page's (no query on
    the second visit, the same products), and an edit of a product it shows, a sale and a
    withdrawn product each show on the very next request."""
    settings.STOREFRONT_CACHE_TTL_PAGES = 0
    url = deep_url(client, "sort=price_asc")

    def visit() -> tuple[list[str], int]:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert (response.status_code, response["X-Storefront-Cache"]) == (200, "MISS")
        product_queries = [q for q in ctx.captured_queries if "catalog_product" in q["sql"]]
        return slugs(response), len(product_queries)

    first, queried = visit()
    assert queried == 1 and len(first) == PAGE_SIZE
    assert first == expected("price_asc")[PAGE_SIZE * MAX_NUMBERED_PAGES :][:PAGE_SIZE]
    assert visit() == (first, 0)

    shown = Product.objects.get(slug=first[0])
    with django_capture_on_commit_callbacks(execute=True):
        update_product(product=shown, name="Renamed Lamp")
    body = client.get(url).content.decode()
    assert "Renamed Lamp" in body
    with django_capture_on_commit_callbacks(execute=True):
        update_product(product=shown, is_active=False)
    assert (
        visit()[0]
        == [slug for slug in expected("price_asc") if slug != shown.slug][
            PAGE_SIZE * MAX_NUMBERED_PAGES :
        ][:PAGE_SIZE]
    )
