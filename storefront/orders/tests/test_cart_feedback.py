"""What the cart and checkout tell the customer: messages, and the prefilled address."""

import pytest
from django.test import Client

from storefront.orders.models import Order
from storefront.orders.services import OrderItem, place_order
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def add(client: Client, product, quantity: int) -> None:
    # Followed, so its "is in your cart" message is shown and gone before the next step.
    response = client.post(f"/cart/add/{product.pk}/", {"quantity": quantity}, follow=True)
    assert messages_of(response) == [f"{product.name} is in your cart."]


@pytest.fixture
def lamp():
    return ProductFactory(name="Lamp", stock=10)


def test_removing_a_line_says_what_was_removed(client: Client, lamp) -> None:
    add(client, lamp, 2)
    response = client.post(f"/cart/remove/{lamp.pk}/", follow=True)
    assert response.status_code == 200
    assert messages_of(response) == ["Removed Lamp from your cart."]
    assert "Removed Lamp from your cart." in response.content.decode()
    assert "Your cart is empty." in response.content.decode()


def test_removing_a_product_not_in_the_cart_says_so(client: Client, lamp) -> None:
    response = client.post(f"/cart/remove/{lamp.pk}/", follow=True)
    assert messages_of(response) == ["Lamp was not in your cart."]


def test_removing_a_product_deleted_from_the_shop(client: Client, lamp) -> None:
    add(client, lamp, 1)
    lamp_id = lamp.pk
    lamp.delete()
    response = client.post(f"/cart/remove/{lamp_id}/", follow=True)
    assert messages_of(response) == ["Removed a product that is no longer sold from your cart."]
    assert "cart-count" not in response.content.decode()


def test_quantity_update_says_what_changed(client: Client, lamp) -> None:
    add(client, lamp, 2)
    response = client.post(f"/cart/update/{lamp.pk}/", {"quantity": 5}, follow=True)
    assert messages_of(response) == ["Lamp: quantity changed from 2 to 5."]
    assert "Lamp: quantity changed from 2 to 5." in response.content.decode()


def test_unchanged_quantity_update_says_it_is_still_the_same(client: Client, lamp) -> None:
    add(client, lamp, 2)
    response = client.post(f"/cart/update/{lamp.pk}/", {"quantity": 2}, follow=True)
    assert messages_of(response) == ["Lamp: quantity is still 2."]
    assert "changed from" not in response.content.decode()


def test_refused_update_shows_the_error_not_a_change(client: Client, lamp) -> None:
    add(client, lamp, 2)
    response = client.post(f"/cart/update/{lamp.pk}/", {"quantity": 11})
    assert response.status_code == 409
    body = response.content.decode()
    assert "Only 10 of Lamp in stock." in body
    assert "quantity changed" not in body


PROFILE = {
    "full_name": "Ada Lovelace",
    "phone": "",
    "address_line": "Flat 2, 12 Engine Way",
    "city": "London",
    "postal_code": "N1 7GU",
    "country": "United Kingdom",
}


def test_checkout_prefills_the_address_in_the_profiles_line_order(client: Client, lamp) -> None:
    user = UserFactory()
    client.force_login(user)
    saved = client.post("/accounts/profile/", {**PROFILE, "email": user.email}, follow=True)
    assert messages_of(saved) == ["Your profile is saved."]
    add(client, lamp, 1)

    response = client.get("/checkout/")

    assert response.status_code == 200
    expected = "Flat 2, 12 Engine Way\nLondon\nN1 7GU\nUnited Kingdom"
    assert response.context["form"]["shipping_address"].value() == expected
    assert f">\n{expected}</textarea>" in response.content.decode()
    # The same lines, in the same order, as the profile form asks for them.
    profile = client.get("/accounts/profile/").content.decode()
    positions = [profile.index(f'name="{f}"') for f in ("address_line", "city", "postal_code")]
    assert positions == sorted(positions)


def test_checkout_prefill_skips_blank_profile_fields(client: Client, lamp) -> None:
    client.force_login(UserFactory(address_line="7 Cobol St", country="USA"))
    add(client, lamp, 1)
    form = client.get("/checkout/").context["form"]
    assert form["shipping_address"].value() == "7 Cobol St\nUSA"


def test_order_without_an_address_ships_to_the_profile_address_as_entered(lamp) -> None:
    user = UserFactory(address_line="1 Loop Road", city="London", postal_code="E1", country="UK")
    order = place_order(user=user, items=[OrderItem(product_id=lamp.pk, quantity=1)])
    assert Order.objects.get(pk=order.pk).shipping_address == "1 Loop Road\nLondon\nE1\nUK"
