"""Checkout is idempotent: a double click, a browser retry or an API retry places ONE order.

The site's checkout form carries a key per rendering; the API takes an Idempotency-Key header.
The order stores the key (unique per customer) and, for the API, the request's fingerprint.
"""

from __future__ import annotations

import re
import threading
import uuid

import pytest
from django.test import Client

from storefront.catalog.models import Product
from storefront.orders.models import Order
from storefront.orders.services import AlreadyPlaced, CheckoutError, OrderItem, place_order
from storefront.orders.tests.races import finish, in_thread
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

ORDERS_URL = "/api/orders/"
KEY_INPUT = re.compile(r'<input type="hidden" name="idempotency_key" value="([^"]+)"')


def stock_of(product: Product) -> int:
    product.refresh_from_db(fields=["stock"])
    return product.stock


# --- the service ------------------------------------------------------------------------------


def test_a_key_places_one_order_per_customer() -> None:
    product = ProductFactory(stock=10)
    ada, bob = UserFactory(), UserFactory()
    first = place_order(user=ada, items=[OrderItem(product.id, 2)], idempotency_key="k-1")

    with pytest.raises(AlreadyPlaced) as again:
        place_order(user=ada, items=[OrderItem(product.id, 2)], idempotency_key="k-1")
    assert again.value.order == first
    # Another customer's identical key is theirs.
    other = place_order(user=bob, items=[OrderItem(product.id, 1)], idempotency_key="k-1")

    assert other != first
    assert Order.objects.count() == 2
    assert stock_of(product) == 7


def test_a_refused_checkout_keeps_its_key_free() -> None:
    product = ProductFactory(stock=1)
    user = UserFactory()
    with pytest.raises(CheckoutError):
        place_order(user=user, items=[OrderItem(product.id, 2)], idempotency_key="k")
    Product.objects.filter(pk=product.pk).update(stock=5)  # restocked
    order = place_order(user=user, items=[OrderItem(product.id, 2)], idempotency_key="k")
    assert order.idempotency_key == "k"


# --- the site ---------------------------------------------------------------------------------


def signed_in_with_cart(product: Product, quantity: int = 2) -> tuple[Client, object]:
    user = UserFactory()
    client = Client()
    client.force_login(user)
    assert client.post(f"/cart/add/{product.pk}/", {"quantity": quantity}).status_code == 302
    return client, user


def rendered_key(client: Client) -> str:
    page = client.get("/checkout/")
    assert page.status_code == 200
    [key] = KEY_INPUT.findall(page.content.decode())
    return key


def checkout_form(key: str) -> dict[str, str]:
    return {"shipping_name": "Ada", "shipping_address": "1 Loop Road", "idempotency_key": key}


def test_each_rendering_of_the_checkout_form_has_its_own_key() -> None:
    client, _ = signed_in_with_cart(ProductFactory())
    first, second = rendered_key(client), rendered_key(client)
    assert first != second
    assert uuid.UUID(first) and uuid.UUID(second)


def test_submitting_the_same_checkout_form_twice_places_one_order() -> None:
    product = ProductFactory(stock=10)
    client, user = signed_in_with_cart(product)
    form = checkout_form(rendered_key(client))

    first = client.post("/checkout/", form)
    second = client.post("/checkout/", form)  # the cart is empty by now

    order = Order.objects.get(user=user)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == order.get_absolute_url()
    assert "This order was already placed." in client.get(second["Location"]).content.decode()
    assert stock_of(product) == 8


def test_the_same_form_posted_again_after_a_new_cart_leaves_that_cart_alone() -> None:
    product, other = ProductFactory(stock=10), ProductFactory(stock=10)
    client, user = signed_in_with_cart(product)
    form = checkout_form(rendered_key(client))
    client.post("/checkout/", form)
    client.post(f"/cart/add/{other.pk}/", {"quantity": 1})

    client.post("/checkout/", form)  # the browser's back button and "resubmit"

    assert Order.objects.filter(user=user).count() == 1
    assert client.session["cart"] == {str(other.pk): 1}
    assert stock_of(other) == 10
    # A fresh checkout page places the new cart.
    assert client.post("/checkout/", checkout_form(rendered_key(client))).status_code == 302
    assert Order.objects.filter(user=user).count() == 2


def test_a_malformed_key_is_a_form_error() -> None:
    client, user = signed_in_with_cart(ProductFactory())
    response = client.post("/checkout/", checkout_form("not-a-uuid"))
    assert response.status_code == 400
    assert "This checkout page is out of date" in response.content.decode()
    assert not Order.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_a_double_click_places_one_order(require_postgres) -> None:
    """Two POSTs of one form at the same moment, each on its own connection: one order, and
    both answers lead to it."""
    product = ProductFactory(stock=10)
    client, user = signed_in_with_cart(product)
    form = checkout_form(rendered_key(client))
    clicks = [Client(), Client()]
    for click in clicks:
        click.cookies.update(client.cookies)  # the same browser session
    start = threading.Barrier(2)

    def submit(click: Client):
        start.wait(timeout=10)
        return click.post("/checkout/", form)

    threads = [in_thread(lambda c=c: submit(c)) for c in clicks]
    responses = [finish(*t) for t in threads]

    order = Order.objects.get(user=user)
    assert [r.status_code for r in responses] == [302, 302]
    assert {r["Location"] for r in responses} == {order.get_absolute_url()}
    assert stock_of(product) == 8


# --- the API ----------------------------------------------------------------------------------


def api_client(user=None) -> tuple[Client, object]:
    user = user or UserFactory()
    client = Client()
    client.force_login(user)
    return client, user


def post_order(client: Client, body: dict, key: str | None = None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(ORDERS_URL, body, content_type="application/json", headers=headers)


def test_an_api_retry_with_the_same_key_and_body_gets_the_same_order() -> None:
    product = ProductFactory(slug="lamp", stock=10)
    client, user = api_client()
    body = {"items": [{"product": "lamp", "quantity": 2}]}

    first = post_order(client, body, key="retry-1")
    retry = post_order(client, body, key="retry-1")

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Location"] == first["Location"]
    assert "Idempotent-Replayed" not in first
    assert retry["Idempotent-Replayed"] == "true"
    assert Order.objects.filter(user=user).count() == 1
    assert stock_of(product) == 8


def test_the_same_order_spelled_differently_is_the_same_request() -> None:
    ProductFactory(slug="lamp", stock=10)
    ProductFactory(slug="mug", stock=10)
    client, user = api_client()
    first = post_order(
        client,
        {"items": [{"product": "lamp", "quantity": 1}, {"product": "mug", "quantity": 2}]},
        key="k",
    )
    again = post_order(
        client,
        {
            "shipping_name": "",
            "items": [{"quantity": 2, "product": "mug"}, {"product": "lamp", "quantity": 1}],
        },
        key="k",
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["number"] == first.json()["number"]
    assert Order.objects.filter(user=user).count() == 1


def test_the_same_key_with_another_body_is_a_409() -> None:
    product = ProductFactory(slug="lamp", stock=10)
    client, user = api_client()
    first = post_order(client, {"items": [{"product": "lamp", "quantity": 2}]}, key="k")

    other = post_order(client, {"items": [{"product": "lamp", "quantity": 3}]}, key="k")

    assert other.status_code == 409
    number = first.json()["number"]
    assert other.json() == {
        "detail": [
            f"This Idempotency-Key was already used for another request (order {number}); "
            "use a new key for a new order."
        ]
    }
    assert Order.objects.filter(user=user).count() == 1
    assert stock_of(product) == 8


def test_keys_are_per_customer() -> None:
    product = ProductFactory(slug="lamp", stock=10)
    body = {"items": [{"product": "lamp", "quantity": 1}]}
    ada, _ = api_client()
    bob, _ = api_client()
    first, second = post_order(ada, body, key="same"), post_order(bob, body, key="same")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["number"] != second.json()["number"]
    assert "Idempotent-Replayed" not in second
    assert stock_of(product) == 8


def test_without_a_key_each_post_is_a_new_order() -> None:
    ProductFactory(slug="lamp", stock=10)
    client, user = api_client()
    body = {"items": [{"product": "lamp", "quantity": 1}]}
    assert post_order(client, body).status_code == post_order(client, body).status_code == 201
    assert Order.objects.filter(user=user).count() == 2


@pytest.mark.parametrize("key", ["", "x" * 101, "with space", "ünïcode"])
def test_a_malformed_key_is_a_400(key: str) -> None:
    ProductFactory(slug="lamp", stock=10)
    client, user = api_client()
    response = client.post(
        ORDERS_URL,
        {"items": [{"product": "lamp", "quantity": 1}]},
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Order.objects.filter(user=user).exists()


def test_a_request_refused_for_stock_may_be_retried_with_its_key() -> None:
    product = ProductFactory(slug="lamp", stock=1)
    client, _ = api_client()
    body = {"items": [{"product": "lamp", "quantity": 2}]}
    assert post_order(client, body, key="k").status_code == 409
    Product.objects.filter(pk=product.pk).update(stock=5)
    retry = post_order(client, body, key="k")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry


def test_the_schema_documents_the_idempotency_key(client: Client) -> None:
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    create = schema["paths"]["/api/orders/"]["post"]
    [header] = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header" and not header.get("required", False)
    assert "Idempotency-Key" in create["responses"]["409"]["description"]
    assert "Idempotent-Replayed" in create["responses"]["201"]["description"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_place_one_order(require_postgres) -> None:
    product = ProductFactory(slug="lamp", stock=10)
    user = UserFactory()
    body = {"items": [{"product": "lamp", "quantity": 2}]}
    start = threading.Barrier(2)

    def submit():
        client, _ = api_client(user)
        start.wait(timeout=10)
        return post_order(client, body, key="at-once")

    threads = [in_thread(submit), in_thread(submit)]
    responses = [finish(*t) for t in threads]

    assert [r.status_code for r in responses] == [201, 201]
    assert len({r.json()["number"] for r in responses}) == 1
    assert sorted(r.get("Idempotent-Replayed", "") for r in responses) == ["", "true"]
    assert Order.objects.filter(user=user).count() == 1
    assert stock_of(product) == 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_for_the_last_units_place_one_order(
    require_postgres,
) -> None:
    """The retry waits for the first request and gets its order back, rather than "out of
    stock" for the units its own first attempt took."""
    product = ProductFactory(slug="lamp", stock=2)
    user = UserFactory()
    body = {"items": [{"product": "lamp", "quantity": 2}]}
    start = threading.Barrier(3)

    def submit():
        client, _ = api_client(user)
        start.wait(timeout=10)
        return post_order(client, body, key="last-units")

    threads = [in_thread(submit) for _ in range(3)]
    responses = [finish(*t) for t in threads]

    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["number"] for r in responses}) == 1
    assert Order.objects.filter(user=user).count() == 1
    assert stock_of(product) == 0
