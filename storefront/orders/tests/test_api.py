"""The orders API: only the caller's orders, placing orders, bad input, stock and query budgets."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client

from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.orders.models import Order
from tests.factories import (
    OrderFactory,
    ProductFactory,
    UserFactory,
    api_token_for,
    order_with_lines,
)

pytestmark = pytest.mark.django_db

ORDERS_URL = "/api/orders/"


@pytest.fixture
def customer() -> User:
    return UserFactory(full_name="Grace Hopper", address_line="1 Navy Way", city="Arlington")


@pytest.fixture
def api(customer: User) -> Client:
    """A client authenticated the way API clients are: with a token header."""
    return Client(HTTP_AUTHORIZATION=f"Token {api_token_for(customer)}")


def place(api: Client, body: object) -> object:
    return api.post(ORDERS_URL, body, content_type="application/json")


def stock_of(product: Product) -> int:
    product.refresh_from_db(fields=["stock"])
    return product.stock


@pytest.mark.parametrize(("method", "url"), [("get", ORDERS_URL), ("post", ORDERS_URL)])
def test_anonymous_requests_are_a_401_asking_for_a_token(
    client: Client, method: str, url: str
) -> None:
    response = getattr(client, method)(url, {}, content_type="application/json")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_anonymous_order_detail_is_a_401(client: Client, customer: User) -> None:
    order = OrderFactory(user=customer)

    response = client.get(f"{ORDERS_URL}{order.number}/")

    assert response.status_code == 401


def test_list_shows_only_the_callers_orders_newest_first(api: Client, customer: User) -> None:
    lamp = ProductFactory(name="Lamp", sku="L-1", slug="lamp", price=Decimal("12.50"))
    older = order_with_lines(user=customer, products=[lamp], quantity=2)
    newer = order_with_lines(user=customer, products=[lamp])
    order_with_lines(user=UserFactory(), products=[lamp])

    body = api.get(ORDERS_URL).json()

    assert [o["number"] for o in body["results"]] == [newer.number, older.number]
    assert body["results"][1] == {
        "number": older.number,
        "status": "placed",
        "total": "25.00",
        "item_count": 2,
        "shipping_name": "",
        "shipping_address": "",
        "created_at": body["results"][1]["created_at"],
        "url": f"http://testserver/api/orders/{older.number}/",
        "lines": [
            {
                "product_name": "Lamp",
                "product_sku": "L-1",
                "product": "lamp",
                "unit_price": "12.50",
                "quantity": 2,
                "line_total": "25.00",
            }
        ],
    }


def test_lines_keep_their_snapshot_when_the_product_is_gone(api: Client, customer: User) -> None:
    lamp = ProductFactory(name="Lamp", sku="L-1")
    order_with_lines(user=customer, products=[lamp])
    lamp.delete()

    [line] = api.get(ORDERS_URL).json()["results"][0]["lines"]

    assert (line["product"], line["product_name"], line["product_sku"]) == (None, "Lamp", "L-1")


def test_cursor_pages_cover_every_order_once(api: Client, customer: User) -> None:
    numbers = [OrderFactory(user=customer).number for _ in range(7)]

    seen, url = [], f"{ORDERS_URL}?page_size=3"
    while url:
        body = api.get(url).json()
        seen += [o["number"] for o in body["results"]]
        url = body["next"]

    assert seen == numbers[::-1]


def test_bad_cursor_is_a_json_404(api: Client) -> None:
    response = api.get(ORDERS_URL, {"cursor": "bm90IGEgY3Vyc29y"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_order_detail(api: Client, customer: User) -> None:
    order = order_with_lines(user=customer, products=[ProductFactory(slug="lamp")])

    response = api.get(f"{ORDERS_URL}{order.number}/")

    assert response.status_code == 200
    assert response.json()["number"] == order.number
    assert response.json()["lines"][0]["product"] == "lamp"


@pytest.mark.parametrize("number", ["theirs", "SF-NOPE-NOPE"])
def test_someone_elses_or_an_unknown_order_is_a_404(api: Client, number: str) -> None:
    theirs = OrderFactory(user=UserFactory())
    number = theirs.number if number == "theirs" else number

    response = api.get(f"{ORDERS_URL}{number}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No order with that number."}


def test_placing_an_order(api: Client, customer: User) -> None:
    lamp = ProductFactory(slug="lamp", name="Lamp", sku="L-1", price=Decimal("12.50"), stock=5)
    mug = ProductFactory(slug="mug", name="Mug", sku="M-1", price=Decimal("3.00"), stock=2)

    response = place(
        api,
        {"items": [{"product": "lamp", "quantity": 2}, {"product": "mug", "quantity": 2}]},
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get(user=customer)
    assert body["number"] == order.number
    assert response.headers["Location"] == f"http://testserver/api/orders/{order.number}/"
    assert (body["total"], body["item_count"], body["status"]) == ("31.00", 4, "placed")
    assert (body["shipping_name"], body["shipping_address"]) == (
        "Grace Hopper",
        "1 Navy Way\nArlington",
    )
    assert [(li["product"], li["quantity"], li["line_total"]) for li in body["lines"]] == [
        ("lamp", 2, "25.00"),
        ("mug", 2, "6.00"),
    ]
    assert (stock_of(lamp), stock_of(mug)) == (3, 0)
    # The lines are snapshots: later product edits do not rewrite history.
    Product.objects.filter(pk=lamp.pk).update(name="Renamed", sku="NEW", price=Decimal("99"))
    detail = api.get(body["url"]).json()
    assert detail["lines"][0]["product_name"] == "Lamp"
    assert detail["lines"][0]["product_sku"] == "L-1"
    assert detail["lines"][0]["unit_price"] == "12.50"


def test_shipping_details_can_be_given(api: Client) -> None:
    ProductFactory(slug="lamp")

    body = place(
        api,
        {
            "items": [{"product": "lamp", "quantity": 1}],
            "shipping_name": "Reception",
            "shipping_address": "2 Harbour Rd",
        },
    ).json()

    assert (body["shipping_name"], body["shipping_address"]) == ("Reception", "2 Harbour Rd")


def test_stock_shortfall_is_a_409_and_changes_nothing(api: Client) -> None:
    lamp = ProductFactory(slug="lamp", name="Lamp", stock=5)
    mug = ProductFactory(slug="mug", name="Mug", stock=1)

    response = place(
        api,
        {"items": [{"product": "lamp", "quantity": 2}, {"product": "mug", "quantity": 3}]},
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": ["Only 1 of Mug left in stock (you asked for 3)."],
    }
    assert not Order.objects.exists()
    assert (stock_of(lamp), stock_of(mug)) == (5, 1)


def test_sold_out_product_is_a_409(api: Client) -> None:
    ProductFactory(slug="mug", name="Mug", stock=0)

    response = place(api, {"items": [{"product": "mug", "quantity": 1}]})

    assert response.status_code == 409
    assert response.json() == {"detail": ["Mug is out of stock."]}


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "Ensure this value is greater than or equal to 1."),
        (-3, "Ensure this value is greater than or equal to 1."),
        (10**12, "Ensure this value is less than or equal to"),
        (settings.STOREFRONT_MAX_LINE_QUANTITY + 1, "Ensure this value is less than or equal to"),
        (1.5, "A valid integer is required."),
        ("two", "A valid integer is required."),
        ("1e400", "A valid integer is required."),
        ([1], "A valid integer is required."),
        (None, "This field may not be null."),
    ],
)
def test_bad_quantities_are_a_400(api: Client, quantity: object, message: str) -> None:
    lamp = ProductFactory(slug="lamp", stock=10**6)

    response = place(api, {"items": [{"product": "lamp", "quantity": quantity}]})

    assert response.status_code == 400
    [error] = response.json()["items"]["0"]["quantity"]
    assert error.startswith(message), error
    assert not Order.objects.exists()
    assert stock_of(lamp) == 10**6


def test_the_largest_allowed_quantity_is_accepted(api: Client) -> None:
    ProductFactory(slug="lamp", stock=1000)

    response = place(
        api, {"items": [{"product": "lamp", "quantity": settings.STOREFRONT_MAX_LINE_QUANTITY}]}
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"items": []}, {"items": {"non_field_errors": ["This list may not be empty."]}}),
        ({}, {"items": ["This field is required."]}),
        (
            {"items": "lamp"},
            {"items": {"non_field_errors": ['Expected a list of items but got type "str".']}},
        ),
        ([], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ({"items": [{"quantity": 1}]}, {"items": {"0": {"product": ["This field is required."]}}}),
        (
            {"items": [{"product": "lamp", "quantity": 1}] * 2},
            {"items": {"1": {"product": ["“lamp” is listed twice; give one item per product."]}}},
        ),
        (
            {"items": [{"product": "lamp", "quantity": 1}], "shipping_name": "x" * 151},
            {"shipping_name": ["Ensure this field has no more than 150 characters."]},
        ),
    ],
)
def test_bad_order_bodies_are_a_400(api: Client, body: object, errors: dict) -> None:
    ProductFactory(slug="lamp")

    response = place(api, body)

    assert response.status_code == 400
    assert response.json() == errors
    assert not Order.objects.exists()


def test_too_many_items_are_a_400(api: Client) -> None:
    items = [{"product": f"p{i}", "quantity": 1} for i in range(51)]

    response = place(api, {"items": items})

    assert response.status_code == 400
    assert response.json() == {
        "items": {"non_field_errors": ["Ensure this field has no more than 50 elements."]}
    }


def test_unknown_and_inactive_products_are_a_400_naming_them(api: Client) -> None:
    lamp = ProductFactory(slug="lamp")
    ProductFactory(slug="withdrawn", is_active=False)

    response = place(
        api,
        {
            "items": [
                {"product": "lamp", "quantity": 1},
                {"product": "withdrawn", "quantity": 1},
                {"product": "no-such-thing", "quantity": 1},
            ]
        },
    )

    assert response.status_code == 400
    assert response.json() == {
        "items": {
            "1": {"product": ["No product “withdrawn” is sold."]},
            "2": {"product": ["No product “no-such-thing” is sold."]},
        }
    }
    assert not Order.objects.exists()
    assert stock_of(lamp) == 10


def test_malformed_json_is_a_400_with_a_message(api: Client) -> None:
    response = api.post(ORDERS_URL, data="{bad", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_bodies_that_are_not_json_are_a_415(api: Client, content_type: str) -> None:
    response = api.post(ORDERS_URL, data="items=lamp", content_type=content_type)

    assert response.status_code == 415
    assert response.json() == {"detail": f'Unsupported media type "{content_type}" in request.'}


# Token lookup (with its user), the orders, their lines with products: three queries,
# however many orders and lines the page shows.
ORDER_LIST_QUERIES = 3


def test_order_list_query_budget_is_constant(
    api: Client, customer: User, django_assert_num_queries
) -> None:
    products = ProductFactory.create_batch(3)
    for _ in range(5):
        order_with_lines(user=customer, products=products)
    with django_assert_num_queries(ORDER_LIST_QUERIES):
        small = api.get(ORDERS_URL, {"page_size": 50}).json()
    for _ in range(45):
        order_with_lines(user=customer, products=products)

    with django_assert_num_queries(ORDER_LIST_QUERIES):
        large = api.get(ORDERS_URL, {"page_size": 50}).json()

    assert (len(small["results"]), len(large["results"])) == (5, 50)
    assert {len(order["lines"]) for order in large["results"]} == {3}


def test_order_list_with_a_session_costs_what_a_token_costs(
    client: Client, customer: User, django_assert_num_queries
) -> None:
    client.force_login(customer)
    order_with_lines(user=customer, products=ProductFactory.create_batch(3))

    # The user row replaces the token lookup; the session itself comes from the cache.
    with django_assert_num_queries(ORDER_LIST_QUERIES):
        assert client.get(ORDERS_URL).status_code == 200
