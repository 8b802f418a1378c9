"""The add-to-cart form of a cached product page carries no CSRF token (storefront/orders/views.py,
cart_add): the page is the same for every anonymous visitor and sets no cookie, the token comes
when the form is submitted (add-to-cart.js, tested in the browser journeys), and without
JavaScript a confirmation page keeps the choice. CSRF checks are enforced in every case here."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from storefront.cache_pages import CACHE_HEADER, CSRF_PLACEHOLDER
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HOST = "http://testserver"


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def _cart(client: Client) -> str:
    return client.get("/cart/").content.decode()


def test_the_cached_product_page_needs_no_token_and_sets_no_cookie(browser: Client) -> None:
    product = ProductFactory(stock=5)
    for expected in ("MISS", "HIT"):
        response = browser.get(f"/products/{product.slug}/")
        assert response[CACHE_HEADER] == expected
        body = response.content.decode()
        assert 'id="add-to-cart"' in body and 'data-token-url="/cart/token/"' in body
        assert "csrfmiddlewaretoken" not in body and CSRF_PLACEHOLDER not in body
        assert not response.cookies
        assert "js/add-to-cart" in body


def test_a_signed_in_visitor_gets_the_token_in_the_form(browser: Client) -> None:
    product = ProductFactory(stock=5)
    browser.force_login(UserFactory())
    body = browser.get(f"/products/{product.slug}/").content.decode()
    assert TOKEN.search(body.split('id="add-to-cart"')[1])


def test_with_the_token_from_the_token_url_the_item_is_added(browser: Client) -> None:
    product = ProductFactory(name="Walnut Tray", stock=5)
    answer = browser.get("/cart/token/", HTTP_ACCEPT="application/json")
    assert answer.status_code == 200
    assert answer["Cache-Control"].startswith("max-age=0")
    assert "csrftoken" in answer.cookies
    token = answer.json()["token"]
    response = browser.post(
        f"/cart/add/{product.pk}/",
        {"quantity": 2, "csrfmiddlewaretoken": token},
        HTTP_ORIGIN=HOST,
    )
    assert response.status_code == 302
    assert "Walnut Tray" in _cart(browser)


def test_without_javascript_a_confirmation_keeps_the_choice(browser: Client) -> None:
    product = ProductFactory(name="Linen Apron", stock=5)
    response = browser.post(f"/cart/add/{product.pk}/", {"quantity": 3}, HTTP_ORIGIN=HOST)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Add to your cart?" in body
    assert "3 × Linen Apron" in body
    assert 'name="quantity" value="3"' in body
    assert "Linen Apron" not in _cart(browser)  # nothing added without the confirmation

    token = TOKEN.search(body).group(1)
    confirmed = browser.post(
        f"/cart/add/{product.pk}/", {"quantity": 3, "csrfmiddlewaretoken": token}, HTTP_ORIGIN=HOST
    )
    assert confirmed.status_code == 302
    cart = _cart(browser)
    assert "Linen Apron" in cart and 'value="3"' in cart


def test_a_bad_quantity_without_a_token_is_a_400_that_says_why(browser: Client) -> None:
    product = ProductFactory(stock=5)
    response = browser.post(f"/cart/add/{product.pk}/", {"quantity": "many"})
    assert response.status_code == 400
    assert "The quantity must be a whole number." in response.content.decode()


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ({"quantity": 1, "csrfmiddlewaretoken": "x" * 64}, {"HTTP_ORIGIN": HOST}),  # wrong token
        ({"quantity": 1}, {"HTTP_ORIGIN": "https://evil.example"}),  # another site's form
        ({"quantity": 1}, {"HTTP_X_CSRFTOKEN": "x" * 64}),  # a wrong header token
    ],
)
def test_other_csrf_failures_are_refused(browser: Client, data: dict, headers: dict) -> None:
    product = ProductFactory(stock=5)
    response = browser.post(f"/cart/add/{product.pk}/", data, **headers)
    assert response.status_code == 403
    assert "Your form expired" in response.content.decode()
    assert product.name not in _cart(browser)


def test_the_token_url_answers_get_only(client: Client) -> None:
    assert client.post("/cart/token/").status_code == 405
