"""The product API: filters, sorts, keyset cursor pages, detail, bad input and query budgets."""

from __future__ import annotations

import base64
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.test import Client

from storefront import caching
from storefront.api import KeysetCursorPagination
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/products/"


def get_list(client: Client, **params: object) -> dict:
    response = client.get(LIST_URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def slugs(client: Client, **params: object) -> list[str]:
    return page_slugs(get_list(client, page_size=100, **params))


def page_slugs(body: dict) -> list[str]:
    return [p["slug"] for p in body["results"]]


def walk(client: Client, url: str) -> list[str]:
    """Follow `next` links from `url` to the end; the slugs in the order served."""
    seen: list[str] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += page_slugs(body)
        url = body["next"]
    return seen


# The start of a position as the API encodes it for sort=price_asc.
PRICE_ORDER = '{"o":["price","id"],'


def cursor_with_position(position: str) -> str:
    """A well-formed cursor (as the API encodes them) carrying an arbitrary position."""
    return base64.b64encode(urlencode({"p": position}).encode()).decode()


def test_product_representation(client: Client) -> None:
    category = CategoryFactory(name="Lamps", slug="lamps")
    product = ProductFactory(
        name="Brass Lamp",
        slug="brass-lamp",
        sku="LAMP-1",
        price=Decimal("49.90"),
        stock=3,
        category=category,
        image="products/2025/01/brass.jpg",
    )

    [item] = get_list(client)["results"]

    assert item == {
        "slug": "brass-lamp",
        "name": "Brass Lamp",
        "sku": "LAMP-1",
        "price": "49.90",
        "stock": 3,
        "in_stock": True,
        "category": {"name": "Lamps", "slug": "lamps"},
        "image": "http://testserver/media/products/2025/01/brass.jpg",
        "url": "http://testserver/api/products/brass-lamp/",
        "created_at": item["created_at"],
    }
    assert item["created_at"].startswith(str(product.created_at.year))


def test_product_without_image_has_null_image_and_out_of_stock_flag(client: Client) -> None:
    ProductFactory(stock=0)

    [item] = get_list(client)["results"]

    assert item["image"] is None
    assert item["in_stock"] is False


def test_lists_only_active_products(client: Client) -> None:
    ProductFactory(slug="on-sale")
    ProductFactory(slug="withdrawn", is_active=False)

    assert slugs(client) == ["on-sale"]


def test_category_filter_includes_child_categories(client: Client) -> None:
    furniture = CategoryFactory(slug="furniture")
    chairs = CategoryFactory(slug="chairs", parent=furniture)
    ProductFactory(slug="oak-table", category=furniture)
    ProductFactory(slug="bar-stool", category=chairs)
    ProductFactory(slug="garden-hose")

    assert sorted(slugs(client, category="furniture")) == ["bar-stool", "oak-table"]
    assert slugs(client, category="chairs") == ["bar-stool"]


def test_unknown_category_is_a_400_naming_it(client: Client) -> None:
    response = client.get(LIST_URL, {"category": "no-such-thing"})

    assert response.status_code == 400
    assert response.json() == {"category": ["Unknown category “no-such-thing”."]}


def test_price_range_is_inclusive(client: Client) -> None:
    for price in ("5.00", "10.00", "15.50", "20.00", "20.01"):
        ProductFactory(slug=f"p-{price.replace('.', '-')}", price=Decimal(price))

    got = slugs(client, min_price="10", max_price="20.00", sort="price_asc")

    assert got == ["p-10-00", "p-15-50", "p-20-00"]


def test_empty_filters_mean_no_filter(client: Client) -> None:
    ProductFactory(slug="only-one")

    assert slugs(client, q="", category="", min_price="", max_price="", sort="") == ["only-one"]


def test_search_finds_a_unique_word_in_the_name(client: Client) -> None:
    ProductFactory(slug="teapot", name="Zanzibar Teapot")
    ProductFactory(slug="mug", name="Plain Mug")

    assert slugs(client, q="zanzibar") == ["teapot"]


@pytest.mark.parametrize("q", ["'&|!():*<->", '"unclosed', "-", "lamp OR OR"])
def test_search_syntax_never_errors(client: Client, q: str) -> None:
    ProductFactory(name="Desk Lamp")

    response = client.get(LIST_URL, {"q": q})

    assert response.status_code == 200


def test_search_with_a_nul_character_is_a_400(client: Client) -> None:
    response = client.get(LIST_URL, {"q": "lamp\x00"})

    assert response.status_code == 400
    assert response.json() == {"q": ["Null characters are not allowed."]}


def test_search_results_follow_the_chosen_sort_not_the_rank(client: Client) -> None:
    # The cheap one mentions the word twice, so a rank ordering would put it first.
    ProductFactory(slug="dear", name="Quokka Lamp", price=Decimal("30.00"))
    ProductFactory(slug="cheap", name="Quokka Quokka", description="quokka", price=Decimal("5.00"))

    assert slugs(client, q="quokka", sort="price_desc") == ["dear", "cheap"]
    assert slugs(client, q="quokka", sort="price_asc") == ["cheap", "dear"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("newest", ["cherry", "apple", "banana"]),
        ("price_asc", ["banana", "cherry", "apple"]),
        ("price_desc", ["apple", "cherry", "banana"]),
        ("name", ["apple", "banana", "cherry"]),
    ],
)
def test_each_sort_order(client: Client, sort: str, expected: list[str]) -> None:
    ProductFactory(slug="banana", name="Banana", price=Decimal("1.00"))
    ProductFactory(slug="apple", name="Apple", price=Decimal("3.00"))
    ProductFactory(slug="cherry", name="Cherry", price=Decimal("2.00"))

    assert slugs(client, sort=sort) == expected


def test_default_sort_is_newest_first(client: Client) -> None:
    ProductFactory(slug="older")
    ProductFactory(slug="newer")

    assert slugs(client) == ["newer", "older"]


@pytest.mark.parametrize("sort", ["newest", "price_asc", "price_desc", "name"])
def test_cursor_pages_cover_every_product_once_in_order(client: Client, sort: str) -> None:
    # Many equal prices: the page boundaries fall inside runs of ties.
    for i in range(23):
        ProductFactory(slug=f"item-{i:02d}", price=Decimal(["10.00", "20.00", "15.00"][i % 3]))
    ProductFactory(slug="hidden", is_active=False)
    in_one_page = slugs(client, sort=sort)

    forward = walk(client, f"{LIST_URL}?sort={sort}&page_size=4")

    assert forward == in_one_page
    assert len(in_one_page) == 23


def test_previous_links_walk_back_over_the_same_pages(client: Client) -> None:
    for i in range(10):
        ProductFactory(slug=f"item-{i}", price=Decimal(i % 2 + 1))
    body = get_list(client, sort="price_asc", page_size=3)
    forward = [page_slugs(body)]
    while body["next"]:
        body = client.get(body["next"]).json()
        forward.append(page_slugs(body))

    backward = [page_slugs(body)]
    while body["previous"]:
        body = client.get(body["previous"]).json()
        backward.insert(0, page_slugs(body))

    assert [len(page) for page in forward] == [3, 3, 3, 1]
    assert backward == forward


def test_first_page_has_no_previous_link_and_last_no_next(client: Client) -> None:
    ProductFactory.create_batch(3)

    body = get_list(client, page_size=3)

    assert body["previous"] is None
    assert body["next"] is None


def test_default_page_size(client: Client) -> None:
    ProductFactory.create_batch(KeysetCursorPagination.page_size + 1)

    body = get_list(client)

    assert len(body["results"]) == KeysetCursorPagination.page_size
    assert body["next"] is not None


def test_page_size_is_capped(client: Client) -> None:
    ProductFactory.create_batch(KeysetCursorPagination.max_page_size + 1)

    body = get_list(client, page_size=10_000)

    assert len(body["results"]) == KeysetCursorPagination.max_page_size == 100


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"min_price": "abc"}, "min_price", "A valid number is required."),
        ({"max_price": "NaN"}, "max_price", "A valid number is required."),
        ({"min_price": "-1"}, "min_price", "Ensure this value is greater than or equal to 0."),
        ({"max_price": "1.005"}, "max_price", "Ensure that there are no more than 2 decimal"),
        ({"max_price": "1" * 40}, "max_price", "Ensure that there are no more than 10 digits"),
        ({"min_price": "20", "max_price": "10"}, "min_price", "The minimum price must not be"),
        ({"sort": "cheapest"}, "sort", '"cheapest" is not a valid choice.'),
        # Relevance exists on the HTML listing only: a cursor cannot page on a rank.
        ({"sort": "relevance"}, "sort", '"relevance" is not a valid choice.'),
        ({"category": "not a slug!"}, "category", 'Enter a valid "slug"'),
        ({"q": "x" * 201}, "q", "Ensure this field has no more than 200 characters."),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(
    client: Client, params: dict[str, str], field: str, message: str
) -> None:
    response = client.get(LIST_URL, params)

    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert body[field][0].startswith(message), body


@pytest.mark.parametrize(
    "cursor",
    [
        "zzz",
        "%%%",
        "ünïcode",
        cursor_with_position("not json"),
        cursor_with_position("[" * 5000),
        cursor_with_position('["1.00","1"]'),  # bare values, without their ordering
        cursor_with_position('{"o":["name","id"],"v":["Lamp","1"]}'),  # from another sort
        cursor_with_position(PRICE_ORDER + '"v":["1.00"]}'),  # too few values for (price, id)
        cursor_with_position(PRICE_ORDER + '"v":["abc","1"]}'),  # not a price
        cursor_with_position(PRICE_ORDER + '"v":["1.00","99999999999999999999999"]}'),  # id range
        cursor_with_position(PRICE_ORDER + '"v":[1.00,1]}'),  # not the encoding the API makes
    ],
)
def test_bad_cursor_is_a_json_404(client: Client, cursor: str) -> None:
    ProductFactory()

    response = client.get(LIST_URL, {"sort": "price_asc", "cursor": cursor})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_valid_position_cursor_is_accepted(client: Client) -> None:
    ProductFactory(slug="cheap", price=Decimal("1.00"))
    ProductFactory(slug="dear", price=Decimal("2.00"))
    cursor = cursor_with_position(PRICE_ORDER + '"v":["1.00","0"]}')

    response = client.get(LIST_URL, {"sort": "price_asc", "cursor": cursor})

    assert page_slugs(response.json()) == ["cheap", "dear"]


def test_a_cursor_from_another_sort_is_refused(client: Client) -> None:
    ProductFactory.create_batch(3)
    next_by_price = get_list(client, sort="price_asc", page_size=1)["next"]

    response = client.get(next_by_price.replace("sort=price_asc", "sort=name"))

    assert response.status_code == 404


def test_detail(client: Client) -> None:
    ProductFactory(slug="kettle", description="Boils water.")

    response = client.get("/api/products/kettle/")

    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "kettle"
    assert body["description"] == "Boils water."
    assert {"updated_at", "created_at", "sku", "price", "category", "url"} <= set(body)


@pytest.mark.parametrize("slug", ["no-such-product", "withdrawn"])
def test_detail_of_unknown_or_inactive_product_is_a_json_404(client: Client, slug: str) -> None:
    ProductFactory(slug="withdrawn", is_active=False)

    response = client.get(f"/api/products/{slug}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No product with that slug."}


def test_write_methods_are_refused_with_json(client: Client) -> None:
    client.force_login(UserFactory())

    response = client.post(LIST_URL, {}, content_type="application/json")

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


def test_unknown_api_path_is_a_json_404(client: Client) -> None:
    response = client.get("/api/no-such-endpoint/")

    assert response.status_code == 404
    assert response.json() == {"detail": "There is no API endpoint at this address."}


# The listing is one query whatever the page holds; a category filter adds the category list
# (when it is not cached yet: each call here starts with an empty cache).
@pytest.mark.parametrize(("params", "queries"), [({}, 1), ({"category": "budget"}, 2)])
def test_listing_query_budget_is_constant(
    client: Client, django_assert_num_queries, params: dict[str, str], queries: int
) -> None:
    parent = CategoryFactory(slug="budget")
    child = CategoryFactory(slug="budget-child", parent=parent)
    ProductFactory.create_batch(3, category=parent)
    ProductFactory.create_batch(2, category=child)
    with django_assert_num_queries(queries):
        small = get_list(client, page_size=50, **params)
    ProductFactory.create_batch(25, category=parent)
    ProductFactory.create_batch(20, category=child)

    caching.clear()
    with django_assert_num_queries(queries):
        large = get_list(client, page_size=50, **params)

    assert (len(small["results"]), len(large["results"])) == (5, 50)


def test_next_page_query_budget_is_constant(client: Client, django_assert_num_queries) -> None:
    ProductFactory.create_batch(60)
    url = get_list(client, page_size=20)["next"]

    with django_assert_num_queries(1):
        page = client.get(url).json()

    assert len(page["results"]) == 20
