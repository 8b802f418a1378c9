"""Every listing, search, order-history, dashboard and API query is answered from an index.

The module seeds a large shop (LARGE below) into the test database with the project's own
seeder (COPY, indexes rebuilt, ANALYZE: the planner sees realistic statistics), captures the
SQL that the real views and selectors run, and EXPLAINs each SELECT: a sequential scan of a
big table fails the test, with the plan in the message.

Database lifecycle: the seed is committed once per module by a module-scoped fixture (outside
any test transaction, through `django_db_blocker.unblock()`), so every test here sees it while
its own changes (sessions of force_login, cache bookkeeping) still roll back with pytest-django's
per-test transaction. When the module ends, the fixture empties every application table again
(TRUNCATE ... RESTART IDENTITY CASCADE, content types and permissions kept, as Django's own
flush between transactional tests leaves the database), so the modules that run after this one
find the empty database they expect. With pytest-xdist each worker has its own database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.core.management.color import no_style
from django.db import connection
from django.db.models import Count
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from conftest import skip_or_fail
from storefront import caching, pagination, seeding
from storefront.accounts.models import User
from storefront.catalog import selectors as catalog_selectors
from storefront.catalog.models import Category, Product
from storefront.dashboards import selectors as dashboard_selectors
from storefront.keyset import Keyset
from storefront.orders import selectors as order_selectors
from storefront.orders.models import Order

pytestmark = [pytest.mark.django_db, pytest.mark.stack]

# Large enough that an index beats a scan only when the query is written for it.
LARGE = {"products": 50_000, "orders": 150_000, "users": 600}
# Tables that must never be read by a sequential scan on a page.
BIG_TABLES = {
    "catalog_product",
    "orders_order",
    "orders_orderline",
    "dashboards_productdailysales",
    "dashboards_productsales30d",
}
# Kept by the cleanup: rows Django itself creates after migrating.
KEPT_TABLES = {"django_content_type", "auth_permission", "django_site"}
DEEP_OFFSET = 30_000  # "page 1,250" of the listing


@dataclass(frozen=True)
class LargeShop:
    seconds: float
    customer: User  # the shopper with the most orders
    staff: User
    category: Category  # a top-level category with children
    leaf: Category
    product: Product
    order_number: str


def _empty_application_tables() -> None:
    tables = [
        t
        for t in connection.introspection.django_table_names(only_existing=True)
        if t not in KEPT_TABLES
    ]
    statements = connection.ops.sql_flush(
        no_style(), tables, reset_sequences=True, allow_cascade=True
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture(scope="module")
def large_shop(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LargeShop]:
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            skip_or_fail("EXPLAIN tests need PostgreSQL (set DATABASE_URL=postgres://...)")
        # The seeder's placeholder images go to a throwaway media directory.
        with override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("explain-media")):
            started = time.perf_counter()
            seeding.seed_shop(**LARGE, seed=1, reset=True)
            # The seeder analyzes the tables it loads before it fills the dashboards' sales
            # tables; without statistics the planner guesses their sizes.
            with connection.cursor() as cursor:
                cursor.execute(
                    "ANALYZE dashboards_dailysales, dashboards_productdailysales, "
                    "dashboards_productsales30d"
                )
            seconds = time.perf_counter() - started
        try:
            top = (
                Order.objects.values("user").annotate(n=Count("id")).order_by("-n", "user").first()
            )
            customer = User.objects.get(pk=top["user"])
            category = (
                Category.objects.filter(parent=None, children__isnull=False).distinct().first()
            )
            yield LargeShop(
                seconds=seconds,
                customer=customer,
                staff=User.objects.get(username=seeding.DEMO_STAFF[0]),
                category=category,
                leaf=Category.objects.filter(parent=category).first(),
                product=Product.objects.active().order_by("id")[1000],
                order_number=Order.objects.filter(user=customer).order_by("id")[5].number,
            )
        finally:
            _empty_application_tables()


# --- plans ------------------------------------------------------------------------------------


def _nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def explain(sql: str, *, analyze: bool = False) -> dict:
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ({options}) {sql}")
        (raw,) = cursor.fetchone()
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]


def sequential_scans(sql: str) -> list[str]:
    """The big tables this statement's plan reads by a sequential scan."""
    plan = explain(sql)["Plan"]
    return sorted(
        {
            node["Relation Name"]
            for node in _nodes(plan)
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES
        }
    )


def _plan_text(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_indexed(label: str, queries: list[str]) -> None:
    selects = [sql for sql in queries if sql.lstrip().upper().startswith("SELECT")]
    assert selects, f"{label}: no SELECT captured"
    problems = []
    for sql in selects:
        scanned = sequential_scans(sql)
        if scanned:
            problems.append(f"Seq Scan on {', '.join(scanned)}:\n{sql}\n{_plan_text(sql)}")
    assert not problems, f"{label}:\n\n" + "\n\n".join(problems)


def page_queries(client: Client, url: str) -> list[str]:
    """The SQL a cold-cache GET of `url` runs (cache emptied first: every query happens)."""
    caching.clear()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return [q["sql"] for q in ctx.captured_queries]


def call_queries(function: Any, **kwargs: Any) -> list[str]:
    caching.clear()
    with CaptureQueriesContext(connection) as ctx:
        result = function(**kwargs)
        if hasattr(result, "query"):  # a lazy QuerySet: run it as its caller would
            list(result[:20])
    return [q["sql"] for q in ctx.captured_queries]


def deep_cursor(queryset: Any, offset: int) -> str:
    """A cursor to the row at `offset` of `queryset`, as a "Next" link there would carry."""
    keyset = Keyset.of(queryset)
    row = queryset[offset]
    return pagination.encode_cursor(keyset, row, number=None)


# --- the pages --------------------------------------------------------------------------------

LISTINGS = [
    "/products/",
    *[f"/products/?sort={sort}" for sort in catalog_selectors.PRODUCT_SORTS],
    "/products/?min_price=20&max_price=40",
    "/products/?min_price=20&max_price=40&sort=price_asc",
    "/products/?max_price=15&sort=name",
    "/products/?q=lamp",
    "/products/?q=oak+lamp&sort=price_asc",
    "/products/?q=walnut&page=3",
    "/products/?q=lamp&sort=newest&page=5",
]


@pytest.mark.parametrize("url", LISTINGS)
def test_listing_pages_use_indexes(client: Client, large_shop: LargeShop, url: str) -> None:
    assert_indexed(url, page_queries(client, url))


@pytest.mark.parametrize("sort", ["", *catalog_selectors.PRODUCT_SORTS])
@pytest.mark.parametrize("which", ["top", "leaf"])
def test_category_listings_use_indexes(
    client: Client, large_shop: LargeShop, sort: str, which: str
) -> None:
    category = large_shop.category if which == "top" else large_shop.leaf
    url = f"/products/?category={category.slug}&sort={sort}"
    assert_indexed(url, page_queries(client, url))
    assert_indexed(url + "&page=4", page_queries(client, url + "&page=4"))


@pytest.mark.parametrize("sort", catalog_selectors.PRODUCT_SORTS)
@pytest.mark.parametrize("direction", ["after", "before"])
def test_deep_keyset_listing_pages_use_indexes(
    client: Client, large_shop: LargeShop, sort: str, direction: str
) -> None:
    products = catalog_selectors.product_listing(sort=sort)
    url = f"/products/?sort={sort}&{direction}={deep_cursor(products, DEEP_OFFSET)}"
    queries = page_queries(client, url)
    assert_indexed(url, queries)
    assert not any("OFFSET" in sql for sql in queries)


def test_deep_keyset_pages_with_filters_use_indexes(client: Client, large_shop: LargeShop) -> None:
    category_ids = catalog_selectors.category_with_descendant_ids(
        category=large_shop.category, categories=catalog_selectors.category_list()
    )
    for params, queryset in [
        (
            f"category={large_shop.category.slug}&sort=price_asc",
            catalog_selectors.product_listing(category_ids=category_ids, sort="price_asc"),
        ),
        (
            "min_price=20&max_price=40&sort=newest",
            catalog_selectors.product_listing(
                min_price=Decimal(20), max_price=Decimal(40), sort="newest"
            ),
        ),
        ("q=lamp&sort=name", catalog_selectors.product_listing(search="lamp", sort="name")),
    ]:
        offset = min(2_000, queryset.count() - 1)
        url = f"/products/?{params}&after={deep_cursor(queryset, offset)}"
        assert_indexed(url, page_queries(client, url))


def test_product_page_and_related_products_use_indexes(
    client: Client, large_shop: LargeShop
) -> None:
    url = large_shop.product.get_absolute_url()
    queries = page_queries(client, url)
    assert len(queries) == 2  # product, related products
    assert_indexed(url, queries)


def test_order_history_and_detail_use_indexes(client: Client, large_shop: LargeShop) -> None:
    client.force_login(large_shop.customer)
    orders = order_selectors.order_history_for(user=large_shop.customer)
    assert orders.count() > order_selectors.ORDER_HISTORY_PAGE_SIZE * (
        pagination.MAX_NUMBERED_PAGES + 2
    ), "the busiest customer should have orders past the numbered pages"
    deep = deep_cursor(orders, orders.count() - 10)
    for url in (
        "/orders/",
        "/orders/?page=3",
        f"/orders/?after={deep}",
        f"/orders/?before={deep}",
        f"/orders/{large_shop.order_number}/",
    ):
        assert_indexed(url, page_queries(client, url))


def test_customer_dashboard_uses_indexes(client: Client, large_shop: LargeShop) -> None:
    client.force_login(large_shop.customer)
    assert_indexed("/dashboard/", page_queries(client, "/dashboard/"))
    for selector in (
        dashboard_selectors.customer_totals,
        dashboard_selectors.customer_recent_orders,
        dashboard_selectors.customer_spending_by_month,
    ):
        assert_indexed(selector.__name__, call_queries(selector, user=large_shop.customer))


def test_staff_dashboard_uses_indexes(client: Client, large_shop: LargeShop) -> None:
    client.force_login(large_shop.staff)
    assert_indexed("/staff/dashboard/", page_queries(client, "/staff/dashboard/"))
    for label, selector, kwargs in [
        ("revenue_per_day", dashboard_selectors.revenue_per_day, {}),
        ("top_products 30 days", dashboard_selectors.top_products, {}),
        ("low_stock_products", dashboard_selectors.low_stock_products, {}),
        ("recent_orders", dashboard_selectors.recent_orders, {}),
    ]:
        assert_indexed(label, call_queries(selector, **kwargs))


# top_products() of other windows groups ProductDailySales first and then looks up the slugs of
# the rows kept (joining the products before grouping made the planner scan them all).
# 7 days: a 90-day window reads a quarter of ProductDailySales, where a scan is a fair plan.
@pytest.mark.parametrize("days", [7])
def test_top_products_of_other_windows_use_indexes(large_shop: LargeShop, days: int) -> None:
    assert_indexed(
        f"top_products {days} days", call_queries(dashboard_selectors.top_products, days=days)
    )


def test_api_listings_use_indexes(client: Client, large_shop: LargeShop) -> None:
    for url in (
        "/api/products/",
        "/api/products/?sort=price_desc",
        f"/api/products/?category={large_shop.leaf.slug}&sort=name",
        "/api/products/?q=lamp",
        "/api/products/?min_price=100",
    ):
        assert_indexed(url, page_queries(client, url))
        following = client.get(url).json()["next"]
        assert following, url
        assert_indexed(following, page_queries(client, following))
    client.force_login(large_shop.customer)
    assert_indexed("/api/orders/", page_queries(client, "/api/orders/"))


def test_deep_page_costs_what_page_one_costs(large_shop: LargeShop, capsys) -> None:
    """Reports (with -s) the execution time of page 1, a keyset page DEEP_OFFSET rows in, and
    the OFFSET query the old paginator would have run there. Measured, not asserted on time:
    what is asserted is that the keyset plan reads about one page of rows, as page 1 does."""
    products = catalog_selectors.product_listing(sort="price_asc")
    keyset = Keyset.of(products)
    row = products[DEEP_OFFSET]
    deep = keyset.page_after(products, keyset.values_from(keyset.position_of(row)), backwards=False)
    size = 24
    report = {}
    for label, queryset in [
        ("page 1", products[: size + 1]),
        ("keyset", deep[: size + 1]),
        ("offset", products[DEEP_OFFSET : DEEP_OFFSET + size]),
    ]:
        with CaptureQueriesContext(connection) as ctx:
            list(queryset)
        sql = ctx.captured_queries[-1]["sql"]
        timings = [explain(sql, analyze=True) for _ in range(3)]
        plan = timings[-1]["Plan"]
        report[label] = (min(t["Execution Time"] for t in timings), plan)
    with capsys.disabled():
        print(f"\nseeded {LARGE} in {large_shop.seconds:.1f} s")
        for label, (ms, _plan) in report.items():
            print(f"  {label:>7}: {ms:.2f} ms")
    rows_read = max(
        node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
        for node in _nodes(report["keyset"][1])
    )
    assert rows_read <= 2 * (size + 1)


def test_the_check_catches_a_sequential_scan(large_shop: LargeShop) -> None:
    """The plan walk itself works: an unindexable filter on a big table is reported."""
    with CaptureQueriesContext(connection) as ctx:
        list(Product.objects.filter(description__contains="hand-finished")[:5])
    assert sequential_scans(ctx.captured_queries[-1]["sql"]) == ["catalog_product"]
    with pytest.raises(AssertionError, match="Seq Scan on catalog_product"):
        assert_indexed("unindexed", [ctx.captured_queries[-1]["sql"]])
