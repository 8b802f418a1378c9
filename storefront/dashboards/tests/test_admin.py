"""The Django admin: staff only, and change lists whose query count does not grow with rows."""

import pytest
from django.test import Client

from storefront.orders.models import Order
from tests.factories import (
    CategoryFactory,
    ProductFactory,
    StaffFactory,
    UserFactory,
    order_with_lines,
)
from tests.querycount import queries_for

pytestmark = pytest.mark.django_db

CHANGE_LISTS = [
    "/admin/catalog/product/",
    "/admin/catalog/category/",
    "/admin/orders/order/",
    "/admin/orders/orderline/",
    "/admin/accounts/user/",
]


def make_data(size: int) -> None:
    parent = CategoryFactory()
    categories = CategoryFactory.create_batch(size, parent=parent)
    products = [ProductFactory(category=c) for c in categories]
    for user in UserFactory.create_batch(size):
        order_with_lines(user=user, products=products[:2])


def test_admin_refuses_customers(client: Client) -> None:
    client.force_login(UserFactory())
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    response = client.get("/admin/orders/order/")
    assert response.status_code == 302


@pytest.mark.parametrize("url", CHANGE_LISTS)
def test_change_lists_have_no_n_plus_one(client: Client, url: str) -> None:
    admin_user = StaffFactory(is_superuser=True)
    client.force_login(admin_user)
    make_data(5)
    small = queries_for(client, url)
    make_data(45)
    assert queries_for(client, url) == small


def test_change_list_search_and_filters(client: Client) -> None:
    client.force_login(StaffFactory(is_superuser=True))
    ProductFactory(name="Findable Lamp", sku="FIND-1")
    ProductFactory(name="Other")
    body = client.get("/admin/catalog/product/?q=FIND-1").content.decode()
    assert "Findable Lamp" in body
    assert "Other" not in body
    order = order_with_lines(user=UserFactory(username="ada"), products=[ProductFactory()])
    body = client.get(f"/admin/orders/order/?status__exact={Order.Status.PLACED}&q=ada").content
    assert order.number in body.decode()


def test_order_change_page_shows_lines(client: Client) -> None:
    client.force_login(StaffFactory(is_superuser=True))
    order = order_with_lines(user=UserFactory(), products=ProductFactory.create_batch(3))
    response = client.get(f"/admin/orders/order/{order.pk}/change/")
    assert response.status_code == 200
    for line in order.lines.all():
        assert line.product_sku in response.content.decode()
