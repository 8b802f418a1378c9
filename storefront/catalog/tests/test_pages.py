from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from storefront import caching
from storefront.catalog.services import update_product
from storefront.pagination import MAX_NUMBERED_PAGES
from tests.factories import CategoryFactory, ProductFactory, UserFactory
from tests.querycount import queries_for

pytestmark = pytest.mark.django_db


def test_home_and_listing_show_products(client: Client) -> None:
    ProductFactory(name="Walnut Desk Lamp", price=Decimal("49.90"))
    for url in ("/", "/products/"):
        response = client.get(url)
        assert response.status_code == 200
        body = response.content.decode()
        assert "Walnut Desk Lamp" in body
        assert "$49.90" in body
        assert "1 product" in body


def test_listing_filters_by_category_price_and_search(client: Client) -> None:
    lamps = CategoryFactory(name="Lamps", slug="lamps")
    ProductFactory(name="Brass Lamp", category=lamps, price=Decimal("80"))
    ProductFactory(name="Paper Lamp", category=lamps, price=Decimal("15"))
    ProductFactory(name="Clay Mug", price=Decimal("12"))
    body = client.get("/products/?category=lamps&max_price=20").content.decode()
    assert "Paper Lamp" in body
    assert "Brass Lamp" not in body
    assert "Clay Mug" not in body
    body = client.get("/products/?q=mug").content.decode()
    assert "Clay Mug" in body
    assert "Paper Lamp" not in body


def test_listing_sorts_by_price(client: Client) -> None:
    ProductFactory(name="Dear", price=Decimal("90"))
    ProductFactory(name="Cheap", price=Decimal("9"))
    body = client.get("/products/?sort=price_asc").content.decode()
    assert body.index("Cheap") < body.index("Dear")
    body = client.get("/products/?sort=price_desc").content.decode()
    assert body.index("Dear") < body.index("Cheap")


def test_listing_paginates(client: Client, settings) -> None:
    settings.STOREFRONT_PAGE_SIZE = 24
    ProductFactory.create_batch(30)
    page1 = client.get("/products/?sort=name")
    page2 = client.get("/products/?sort=name&page=2")
    assert page1.status_code == page2.status_code == 200
    assert page1.context["page"].number == 1
    assert len(page1.context["products"]) == 24
    assert len(page2.context["products"]) == 6
    assert 'href="?sort=name&amp;page=2"' in page1.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("min_price=abc", "Enter a number."),
        ("max_price=-5", "greater than or equal to 0"),
        ("min_price=50&max_price=10", "The minimum price must not be above the maximum price."),
        ("min_price=1e999", "less than or equal to 99999999.99"),
        ("sort=cheapest", "Select a valid choice."),
        ("category=bad%20slug!", "Enter a valid"),
        ("q=" + "x" * 201, "at most 200 characters"),
        ("page=two", "The page number must be a whole number."),
    ],
)
def test_bad_filters_answer_400_with_a_message(client: Client, query: str, message: str) -> None:
    ProductFactory()
    response = client.get(f"/products/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize(
    ("page", "status", "message"),
    [
        ("2", 404, "There is no page 2; the last page is 1."),
        ("999", 404, "There is no page 999; the last page is 1."),
        ("0", 400, "Page numbers start at 1."),
        ("-1", 400, "Page numbers start at 1."),
        (
            "99999999999999999999999",
            404,
            "There is no page 99999999999999999999999; the last page is 1.",
        ),
    ],
)
def test_out_of_range_pages_have_a_message(
    client: Client, page: str, status: int, message: str
) -> None:
    ProductFactory()
    response = client.get(f"/products/?page={page}")
    assert response.status_code == status
    assert message in response.content.decode()


def test_unknown_category_is_404(client: Client) -> None:
    response = client.get("/products/?category=no-such-thing")
    assert response.status_code == 404
    assert "There is no category called" in response.content.decode()


def test_product_page_shows_details_and_related(client: Client) -> None:
    category = CategoryFactory(name="Kitchen")
    product = ProductFactory(
        name="Copper Pan", category=category, price=Decimal("64.00"), stock=3, sku="PAN-1"
    )
    ProductFactory(name="Iron Skillet", category=category)
    response = client.get(f"/products/{product.slug}/")
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("Copper Pan", "$64.00", "PAN-1", "Kitchen", "Only 3 left", "Iron Skillet"):
        assert text in body
    assert 'id="add-to-cart"' in body


def test_sold_out_product_has_no_add_to_cart(client: Client) -> None:
    product = ProductFactory(stock=0)
    body = client.get(f"/products/{product.slug}/").content.decode()
    assert "Sold out" in body
    assert 'id="add-to-cart"' not in body


@pytest.mark.parametrize("slug", ["no-such-product", "inactive"])
def test_unknown_or_inactive_product_is_404(client: Client, slug: str) -> None:
    ProductFactory(slug="inactive", is_active=False)
    response = client.get(f"/products/{slug}/")
    assert response.status_code == 404
    assert f"No product called “{slug}”." in response.content.decode()


# Query budgets: exact counts, the same whatever the number of products shown.
# Listing, numbered pages: categories, count (bounded: at most 5 pages + 1 rows), page of
# products (their categories come from the category list). The categories are cached for every
# listing, the count per filter set (storefront/catalog/selectors.py).
LISTING_QUERIES = 3
# Listing past the numbered pages (?after= / ?before= cursor): categories, page (no count).
CURSOR_LISTING_QUERIES = 2
# Product page: product with category, related products.
PRODUCT_QUERIES = 2
# Signed in: + user (cached_db sessions: the session itself comes from the cache).
SESSION_QUERIES = 1


@pytest.mark.parametrize("shown", [5, 24])
def test_listing_query_budget(client: Client, shown: int) -> None:
    category = CategoryFactory()
    ProductFactory.create_batch(shown, category=category)
    CategoryFactory.create_batch(shown)
    urls = [
        "/products/",
        f"/products/?category={category.slug}&sort=price_asc",
        "/products/?q=product",
    ]
    for url in urls:  # each measured with an empty cache
        caching.clear()
        assert queries_for(client, url) == LISTING_QUERIES
    # With a warm cache: the category list is shared; a page already cached costs no query.
    caching.clear()
    assert [queries_for(client, url) for url in urls] == [LISTING_QUERIES] + [
        LISTING_QUERIES - 1
    ] * 2
    assert [queries_for(client, url) for url in urls] == [0, 0, 0]
    # Signed in: never the cached page; the category list, this listing's count and its rows
    # (cached by the anonymous render) still come from the cache: no catalog query.
    client.force_login(UserFactory())
    assert queries_for(client, "/products/") == SESSION_QUERIES
    caching.clear()
    assert queries_for(client, "/products/") == LISTING_QUERIES + SESSION_QUERIES


@pytest.mark.parametrize("beyond", [1, 30])
def test_long_listing_query_budget(client: Client, settings, beyond: int) -> None:
    """More products than the numbered pages hold: + the planner's estimate of the total
    (PostgreSQL only), cached per filter set; the same however many more there are."""
    settings.STOREFRONT_PAGE_SIZE = 2
    ProductFactory.create_batch(2 * MAX_NUMBERED_PAGES + beyond)
    estimate_queries = 1 if connection.vendor == "postgresql" else 0
    assert queries_for(client, "/products/") == LISTING_QUERIES + estimate_queries
    # Another page or sort of the same listing: the categories, the count and the estimate are
    # cached (the sort changes neither count): the page of products only.
    assert queries_for(client, "/products/?page=2") == 1
    assert queries_for(client, "/products/?sort=name&page=3") == 1
    # Another filter set is another count and another estimate.
    assert queries_for(client, "/products/?min_price=1") == LISTING_QUERIES - 1 + estimate_queries


@pytest.mark.parametrize("shown", [3, 12])
def test_deep_listing_page_query_budget(client: Client, settings, shown: int) -> None:
    settings.STOREFRONT_PAGE_SIZE = shown
    ProductFactory.create_batch(shown * (MAX_NUMBERED_PAGES + 2))
    last_numbered = client.get(f"/products/?sort=price_asc&page={MAX_NUMBERED_PAGES}")
    deep = f"/products/{last_numbered.context['page'].next_url}"
    caching.clear()
    assert queries_for(client, deep) == CURSOR_LISTING_QUERIES
    # Further on, by cursor, the same: the category list is cached, then the page itself.
    caching.clear()
    response = client.get(deep)
    assert len(response.context["products"]) == shown
    deeper = f"/products/{response.context['page'].next_url}"
    assert queries_for(client, deeper) == CURSOR_LISTING_QUERIES - 1
    assert queries_for(client, deeper) == 0
    # Signed in: no page cache, but the cursor page's rows are cached like a numbered page's
    # (catalog.selectors.listing_page_rows): the session's queries only.
    client.force_login(UserFactory())
    assert queries_for(client, deeper) == SESSION_QUERIES


@pytest.mark.parametrize("related", [1, 20])
def test_product_page_query_budget(client: Client, related: int) -> None:
    category = CategoryFactory()
    product = ProductFactory(category=category)
    ProductFactory.create_batch(related, category=category)
    assert queries_for(client, f"/products/{product.slug}/") == PRODUCT_QUERIES
    assert queries_for(client, f"/products/{product.slug}/") == 0  # the cached page


def test_favicon_redirects_to_the_static_icon(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"


def test_product_urls_follow_the_url_configuration(settings) -> None:
    """get_absolute_url fills a cached pattern: it must still match reverse() and change with
    the script prefix (a deployment under a sub-path)."""
    from django.urls import reverse, set_script_prefix

    product = ProductFactory(slug="oak-desk-lamp")
    assert product.get_absolute_url() == reverse(
        "catalog:product_detail", kwargs={"slug": "oak-desk-lamp"}
    )
    set_script_prefix("/shop/")
    try:
        assert product.get_absolute_url() == "/shop/products/oak-desk-lamp/"
    finally:
        set_script_prefix("/")


def test_product_description_is_escaped_paragraphs_and_a_truncated_meta(
    client: Client, settings, django_capture_on_commit_callbacks
) -> None:
    """The description's paragraphs and the meta description travel with the cached product
    (computed once per product version): escaped, split into paragraphs, the meta cut at 150
    characters, and an edit shows on the next request."""
    settings.STOREFRONT_CACHE_TTL_PAGES = 0  # every request renders the page (product cached)
    text = "Solid <oak> & brass.\nOiled by hand.\n\n" + "Second paragraph " * 12
    product = ProductFactory(slug="oak-lamp", description=text)
    for _ in range(2):  # rendered from the database, then from the cached product
        body = client.get("/products/oak-lamp/").content.decode()
        assert (
            '<div class="description"><p>Solid &lt;oak&gt; &amp; brass.<br>Oiled by hand.</p>'
            "\n\n<p>Second paragraph" in body
        )
        meta = body.split('<meta name="description" content="', 1)[1].split('">', 1)[0]
        assert meta.startswith("Solid &lt;oak&gt; &amp; brass.")
        assert meta.endswith("…") and len(meta.replace("&lt;", "<").replace("&gt;", ">")) < 160
    with django_capture_on_commit_callbacks(execute=True):
        update_product(product=product, description="Now walnut.")
    body = client.get("/products/oak-lamp/").content.decode()
    assert '<div class="description"><p>Now walnut.</p></div>' in body
    assert '<meta name="description" content="Now walnut.">' in body
