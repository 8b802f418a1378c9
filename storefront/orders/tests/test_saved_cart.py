"""The saved cart: a signed-in customer's cart survives logout and is merged at login."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.orders.models import CartItem, Order
from storefront.orders.services import (
    CheckoutError,
    OrderItem,
    place_order_from_cart,
    saved_cart_set_line,
)
from tests.factories import TEST_PASSWORD, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def add(client: Client, product: Product, quantity: int = 1):
    response = client.post(f"/cart/add/{product.pk}/", {"quantity": quantity})
    assert response.status_code == 302, response.content.decode()
    return response


def log_in(client: Client, user: User):
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": TEST_PASSWORD}, follow=True
    )
    assert response.status_code == 200
    return response


def log_out(client: Client) -> None:
    assert client.post("/accounts/logout/").status_code == 302


def session_cart(client: Client) -> dict[str, int]:
    return client.session.get("cart", {})


def saved_cart(user: User) -> dict[int, int]:
    return dict(CartItem.objects.filter(user=user).values_list("product_id", "quantity"))


def badge(client: Client) -> str:
    body = client.get("/cart/").content.decode()
    marker = '<span class="badge" id="cart-count">'
    if marker not in body:
        return ""
    start = body.index(marker) + len(marker)
    return body[start : body.index("<", start)]


def test_cart_is_kept_across_logout_and_login(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", price=Decimal("12.50"), stock=10)
    mug = ProductFactory(name="Mug", price=Decimal("4.00"), stock=10)
    log_in(client, user)
    add(client, lamp, 2)
    add(client, mug, 1)
    assert saved_cart(user) == {lamp.pk: 2, mug.pk: 1}

    log_out(client)
    body = client.get("/cart/").content.decode()
    assert "Your cart is empty." in body
    assert badge(client) == ""

    log_in(client, user)
    assert session_cart(client) == {str(lamp.pk): 2, str(mug.pk): 1}
    body = client.get("/cart/").content.decode()
    assert "Lamp" in body and "Mug" in body
    assert "$29.00" in body  # 2 × 12.50 + 4.00
    assert badge(client) == "3"


def test_quantity_changes_and_removals_are_saved(client: Client) -> None:
    user = UserFactory()
    lamp, mug = ProductFactory(name="Lamp"), ProductFactory(name="Mug")
    log_in(client, user)
    add(client, lamp, 2)
    add(client, mug, 1)
    assert client.post(f"/cart/update/{lamp.pk}/", {"quantity": 5}).status_code == 302
    assert client.post(f"/cart/remove/{mug.pk}/").status_code == 302
    assert saved_cart(user) == {lamp.pk: 5}

    log_out(client)
    log_in(client, user)
    assert session_cart(client) == {str(lamp.pk): 5}


def test_refused_change_leaves_the_saved_cart_alone(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=3)
    log_in(client, user)
    add(client, lamp, 2)
    response = client.post(f"/cart/update/{lamp.pk}/", {"quantity": 4})
    assert response.status_code == 409
    assert "Only 3 of Lamp in stock." in response.content.decode()
    assert saved_cart(user) == {lamp.pk: 2}
    assert session_cart(client) == {str(lamp.pk): 2}


def test_anonymous_cart_is_merged_into_the_saved_cart_at_login(client: Client) -> None:
    user = UserFactory()
    lamp, mug, kettle = (ProductFactory(name=n, stock=20) for n in ("Lamp", "Mug", "Kettle"))
    saved_cart_set_line(user=user, product_id=lamp.pk, quantity=3)
    saved_cart_set_line(user=user, product_id=mug.pk, quantity=1)
    add(client, lamp, 4)  # anonymous
    add(client, kettle, 2)

    log_in(client, user)

    # Quantities add up; the saved lines come first, then the anonymous cart's new ones.
    assert session_cart(client) == {str(lamp.pk): 7, str(mug.pk): 1, str(kettle.pk): 2}
    assert saved_cart(user) == {lamp.pk: 7, mug.pk: 1, kettle.pk: 2}
    assert badge(client) == "10"


def test_merged_quantities_are_capped_at_the_line_limit_and_the_stock(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=500)
    mug = ProductFactory(name="Mug", stock=20)
    saved_cart_set_line(user=user, product_id=lamp.pk, quantity=60)
    saved_cart_set_line(user=user, product_id=mug.pk, quantity=4)
    add(client, lamp, 60)
    add(client, mug, 3)
    Product.objects.filter(pk=mug.pk).update(stock=5)  # sold meanwhile

    body = log_in(client, user).content.decode()

    assert saved_cart(user) == {lamp.pk: 99, mug.pk: 5}
    assert session_cart(client) == {str(lamp.pk): 99, str(mug.pk): 5}
    assert "Lamp: quantity lowered from 120 to 99 (at most 99 of one product)." in body
    assert "Mug: quantity lowered from 7 to 5 (only 5 in stock)." in body


def test_products_gone_from_the_shop_are_dropped_at_login(client: Client) -> None:
    user = UserFactory()
    retired = ProductFactory(name="Retired")
    sold_out = ProductFactory(name="Sold Out")
    deleted = ProductFactory(name="Deleted")
    lamp = ProductFactory(name="Lamp")
    saved_cart_set_line(user=user, product_id=retired.pk, quantity=1)
    saved_cart_set_line(user=user, product_id=sold_out.pk, quantity=1)
    add(client, deleted, 1)
    add(client, lamp, 1)
    Product.objects.filter(pk=retired.pk).update(is_active=False)
    Product.objects.filter(pk=sold_out.pk).update(stock=0)
    deleted.delete()

    body = log_in(client, user).content.decode()

    assert session_cart(client) == {str(lamp.pk): 1}
    assert saved_cart(user) == {lamp.pk: 1}
    assert "Retired is no longer sold and was taken out of your cart." in body
    assert "Sold Out is out of stock and was taken out of your cart." in body
    assert "A product in your cart was removed from the shop." in body


def test_logging_in_again_in_the_same_session_does_not_add_the_cart_twice(
    client: Client,
) -> None:
    user = UserFactory()
    lamp = ProductFactory()
    add(client, lamp, 2)
    client.force_login(user)
    client.force_login(user)  # e.g. the admin's login form, already signed in
    assert session_cart(client) == {str(lamp.pk): 2}
    assert saved_cart(user) == {lamp.pk: 2}


def test_another_customer_logging_in_does_not_inherit_the_cart(client: Client) -> None:
    ada, bob = UserFactory(), UserFactory()
    lamp = ProductFactory()
    log_in(client, ada)
    add(client, lamp, 2)
    client.force_login(bob)  # no logout in between: login() flushes Ada's session
    assert session_cart(client) == {}
    assert saved_cart(bob) == {}
    assert saved_cart(ada) == {lamp.pk: 2}


def test_signup_keeps_the_anonymous_cart(client: Client) -> None:
    lamp = ProductFactory(name="Lamp", stock=10)
    add(client, lamp, 2)
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newbie",
            "email": "newbie@example.com",
            "full_name": "New Bie",
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert session_cart(client) == {str(lamp.pk): 2}
    assert saved_cart(user) == {lamp.pk: 2}

    log_out(client)
    client.post("/accounts/login/", {"username": "newbie", "password": "a-long-unusual-passphrase"})
    assert session_cart(client) == {str(lamp.pk): 2}


def test_checkout_empties_the_saved_cart(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=5)
    log_in(client, user)
    add(client, lamp, 2)
    response = client.post("/checkout/", {"shipping_name": "Ada", "shipping_address": "1 Road"})
    assert response.status_code == 302
    assert Order.objects.filter(user=user).count() == 1
    assert saved_cart(user) == {}

    log_out(client)
    log_in(client, user)
    assert session_cart(client) == {}
    assert "Your cart is empty." in client.get("/cart/").content.decode()


def test_refused_checkout_keeps_the_saved_cart(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=5)
    log_in(client, user)
    add(client, lamp, 3)
    Product.objects.filter(pk=lamp.pk).update(stock=1)
    response = client.post("/checkout/", {"shipping_name": "Ada", "shipping_address": "1 Road"})
    assert response.status_code == 409
    assert "Only 1 of Lamp left in stock (you asked for 3)." in response.content.decode()
    assert saved_cart(user) == {lamp.pk: 3}


def test_place_order_from_cart_rolls_back_the_emptying_when_refused() -> None:
    user = UserFactory()
    lamp = ProductFactory(name="Lamp", stock=1)
    saved_cart_set_line(user=user, product_id=lamp.pk, quantity=2)
    with pytest.raises(CheckoutError):
        place_order_from_cart(user=user, items=[OrderItem(product_id=lamp.pk, quantity=2)])
    assert saved_cart(user) == {lamp.pk: 2}
    assert Order.objects.count() == 0


def test_cart_pages_read_the_session_not_the_saved_cart(client: Client) -> None:
    user = UserFactory()
    lamp = ProductFactory()
    log_in(client, user)
    add(client, lamp, 2)
    for url in ("/cart/", "/checkout/", "/products/", "/dashboard/"):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        assert not [q for q in ctx.captured_queries if "orders_cartitem" in q["sql"]], url
