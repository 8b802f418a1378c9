from decimal import Decimal

import pytest
from django.test import Client

from storefront.catalog.models import Product
from storefront.orders import selectors
from storefront.orders.models import Order
from storefront.pagination import MAX_NUMBERED_PAGES
from tests.factories import OrderFactory, ProductFactory, UserFactory, order_with_lines
from tests.querycount import queries_for

pytestmark = pytest.mark.django_db


def add(client: Client, product: Product, quantity: object = 1):
    return client.post(f"/cart/add/{product.pk}/", {"quantity": quantity})


def test_cart_add_update_remove(client: Client) -> None:
    lamp = ProductFactory(name="Lamp", price=Decimal("12.50"), stock=10)
    response = add(client, lamp, 2)
    assert response.status_code == 302
    assert response["Location"] == "/cart/"
    body = client.get("/cart/").content.decode()
    assert "Lamp" in body
    assert "$25.00" in body
    assert client.post(f"/cart/update/{lamp.pk}/", {"quantity": 5}).status_code == 302
    assert "$62.50" in client.get("/cart/").content.decode()
    add(client, lamp, 1)
    assert client.session["cart"] == {str(lamp.pk): 6}
    assert client.post(f"/cart/remove/{lamp.pk}/").status_code == 302
    assert "Your cart is empty." in client.get("/cart/").content.decode()


@pytest.mark.parametrize(
    ("quantity", "status", "message"),
    [
        ("-1", 400, "The quantity must be at least 1."),
        ("0", 400, "The quantity must be at least 1."),
        ("abc", 400, "The quantity must be a whole number."),
        ("1.5", 400, "The quantity must be a whole number."),
        ("", 400, "Say how many you want."),
        ("100", 400, "You can order at most 99 of one product."),
        ("99999999999999999999999999", 400, "You can order at most 99 of one product."),
        ("11", 409, "Only 10 of Lamp in stock."),
    ],
)
def test_bad_cart_quantities_are_refused_and_change_nothing(
    client: Client, quantity: str, status: int, message: str
) -> None:
    lamp = ProductFactory(name="Lamp", stock=10)
    add(client, lamp, 1)
    response = add(client, lamp, quantity)
    assert response.status_code == status
    assert message in response.content.decode()
    assert client.session["cart"] == {str(lamp.pk): 1}


def test_cart_refuses_unknown_and_inactive_products(client: Client) -> None:
    assert client.post("/cart/add/999999/", {"quantity": 1}).status_code == 404
    retired = ProductFactory(name="Retired", is_active=False)
    response = add(client, retired)
    assert response.status_code == 409
    assert "Retired is no longer sold." in response.content.decode()


def test_cart_changes_need_post(client: Client) -> None:
    lamp = ProductFactory()
    assert client.get(f"/cart/add/{lamp.pk}/").status_code == 405


def test_checkout_requires_login(client: Client) -> None:
    response = client.get("/checkout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/checkout/"


def test_checkout_places_order_and_shows_it_in_history(client: Client) -> None:
    user = UserFactory(full_name="Grace Hopper", address_line="7 Cobol St", city="Arlington")
    lamp = ProductFactory(name="Lamp", price=Decimal("30.00"), stock=3)
    client.force_login(user)
    add(client, lamp, 2)
    page = client.get("/checkout/")
    assert page.status_code == 200
    assert "Grace Hopper" in page.content.decode()
    response = client.post(
        "/checkout/", {"shipping_name": "Grace Hopper", "shipping_address": "7 Cobol St"}
    )
    order = Order.objects.get(user=user)
    assert response.status_code == 302
    assert response["Location"] == f"/orders/{order.number}/"
    assert order.total == Decimal("60.00")
    assert Product.objects.get(pk=lamp.pk).stock == 1
    assert "cart" not in client.session
    detail = client.get(response["Location"]).content.decode()
    assert f"Order {order.number}" in detail
    assert "Thank you! Your order" in detail
    assert order.number in client.get("/orders/").content.decode()


def test_failed_checkout_keeps_cart_and_changes_nothing(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=3)
    client.force_login(user)
    add(client, lamp, 3)
    Product.objects.filter(pk=lamp.pk).update(stock=1)  # someone else bought two meanwhile
    response = client.post("/checkout/", {"shipping_name": "X", "shipping_address": "Y"})
    assert response.status_code == 409
    body = response.content.decode()
    assert "Only 1 of Lamp left in stock (you asked for 3)." in body
    assert "nothing was charged or reserved" in body
    assert Order.objects.count() == 0
    assert Product.objects.get(pk=lamp.pk).stock == 1
    assert client.session["cart"] == {str(lamp.pk): 3}


def test_checkout_form_errors_are_400(client: Client) -> None:
    client.force_login(UserFactory())
    add(client, ProductFactory())
    response = client.post("/checkout/", {"shipping_name": "", "shipping_address": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert Order.objects.count() == 0


def test_empty_cart_checkout(client: Client) -> None:
    client.force_login(UserFactory())
    assert client.get("/checkout/")["Location"] == "/cart/"
    response = client.post("/checkout/", {"shipping_name": "A", "shipping_address": "B"})
    assert response.status_code == 409
    assert "Your cart is empty." in response.content.decode()


def test_customer_cannot_see_another_customers_order(client: Client) -> None:
    owner, other = UserFactory(), UserFactory()
    order = order_with_lines(user=owner, products=[ProductFactory()])
    client.force_login(other)
    response = client.get(f"/orders/{order.number}/")
    assert response.status_code == 404
    assert order.number not in client.get("/orders/").content.decode()
    client.force_login(owner)
    assert client.get(f"/orders/{order.number}/").status_code == 200


def test_order_pages_need_login(client: Client) -> None:
    assert client.get("/orders/").status_code == 302
    assert client.get("/orders/SF-AAAA-BBBB/").status_code == 302


def test_order_history_bad_pages(client: Client) -> None:
    client.force_login(UserFactory())
    assert client.get("/orders/?page=abc").status_code == 400
    assert client.get("/orders/?page=5").status_code == 404
    response = client.get("/orders/?page=6")  # past the end of an empty history
    assert response.status_code == 404
    assert "There is no page 6" in response.content.decode()
    response = client.get("/orders/?after=forged")
    assert response.status_code == 400
    body = response.content.decode()
    assert "That page link is not valid" in body
    assert "<main" in body and response["Content-Type"].startswith("text/html")  # site layout


def test_order_history_bookmarked_deep_page_redirects_to_its_cursor_page(
    client: Client, monkeypatch
) -> None:
    monkeypatch.setattr(selectors, "ORDER_HISTORY_PAGE_SIZE", 2)
    user = UserFactory()
    OrderFactory.create_batch(2 * (MAX_NUMBERED_PAGES + 2), user=user)
    client.force_login(user)
    moved = client.get(f"/orders/?page={MAX_NUMBERED_PAGES + 1}")
    assert moved.status_code == 302
    assert moved["Location"].startswith("/orders/?after=")
    by_cursor = client.get(moved["Location"]).context["orders"]
    last_numbered = client.get(f"/orders/?page={MAX_NUMBERED_PAGES}").context["page"]
    following = client.get(f"/orders/{last_numbered.next_url}").context["orders"]
    assert [o.number for o in by_cursor] == [o.number for o in following]


# Query budgets (exact; the same for 5 or 20 orders / lines shown).
# Sessions are cached_db: a session is read from the cache, not the database.
# history: user, count (bounded: at most 5 pages + 1 rows), page of orders
HISTORY_QUERIES = 3
# history past the numbered pages (?after= / ?before= cursor): user, page of orders
HISTORY_CURSOR_QUERIES = 2
# detail: user, order, lines with products
DETAIL_QUERIES = 3
# cart: one products query when it has items
CART_QUERIES = 1
# checkout page: user, products of the cart
CHECKOUT_QUERIES = 2


@pytest.mark.parametrize("size", [5, 20])
def test_order_pages_query_budget(client: Client, size: int) -> None:
    user = UserFactory()
    products = ProductFactory.create_batch(size)
    for _ in range(size):
        order = order_with_lines(user=user, products=products)
    client.force_login(user)
    assert queries_for(client, "/orders/") == HISTORY_QUERIES
    assert queries_for(client, f"/orders/{order.number}/") == DETAIL_QUERIES


@pytest.mark.parametrize("size", [2, 8])
def test_order_history_deep_page_query_budget(client: Client, monkeypatch, size: int) -> None:
    monkeypatch.setattr(selectors, "ORDER_HISTORY_PAGE_SIZE", size)
    user = UserFactory()
    OrderFactory.create_batch(size * (MAX_NUMBERED_PAGES + 2), user=user)
    client.force_login(user)
    last_numbered = client.get(f"/orders/?page={MAX_NUMBERED_PAGES}").context["page"]
    deep = f"/orders/{last_numbered.next_url}"
    assert queries_for(client, deep) == HISTORY_CURSOR_QUERIES
    assert len(client.get(deep).context["orders"]) == size


@pytest.mark.parametrize("size", [5, 20])
def test_cart_and_checkout_query_budget(client: Client, size: int) -> None:
    products = ProductFactory.create_batch(size)
    for product in products:
        add(client, product)
    assert queries_for(client, "/cart/") == CART_QUERIES
    client.force_login(UserFactory())
    for product in products:
        add(client, product)
    assert queries_for(client, "/checkout/") == CHECKOUT_QUERIES
