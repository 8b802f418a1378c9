"""Cancelling orders (staff): the lines go back to stock by delta under the row lock, the sales
tables forget the order, cancelling twice changes nothing; order lines are read-only in the
admin."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.test import Client

from storefront.catalog.models import Product
from storefront.catalog.tests.admin_forms import form_data
from storefront.orders.models import Order, OrderLine
from storefront.orders.services import OrderItem, cancel_orders, place_order
from storefront.orders.tests.races import blocked_on_a_lock, checkout_held_open, finish, in_thread
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/orders/order/"


def stock(product: Product) -> tuple[int, int]:
    product.refresh_from_db(fields=["stock", "stock_version"])
    return product.stock, product.stock_version


def buy(*items: tuple[Product, int]) -> Order:
    return place_order(user=UserFactory(), items=[OrderItem(p.id, q) for p, q in items])


def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def status_of(order: Order) -> str:
    order.refresh_from_db(fields=["status"])
    return order.status


# --- the service ------------------------------------------------------------------------------


def test_cancelling_restocks_the_lines_by_delta() -> None:
    lamp, mug = ProductFactory(stock=10), ProductFactory(stock=5)
    order = buy((lamp, 3), (mug, 2))
    buy((lamp, 4))  # a later sale is kept: the restock adds, it does not write back

    result = cancel_orders(order_ids=[order.pk])

    assert result.cancelled == [order]
    assert status_of(order) == Order.Status.CANCELLED
    assert stock(lamp) == (10 - 3 - 4 + 3, 3)
    assert stock(mug) == (5, 2)


def test_cancelling_twice_changes_nothing() -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 3))
    cancel_orders(order_ids=[order.pk])

    again = cancel_orders(order_ids=[order.pk])

    assert (again.cancelled, again.already_cancelled) == ([], [order])
    assert stock(lamp) == (10, 2)


@pytest.mark.parametrize("status", [Order.Status.SHIPPED, Order.Status.DELIVERED])
def test_shipped_orders_are_not_cancelled(status: str) -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 3))
    Order.objects.filter(pk=order.pk).update(status=status)

    result = cancel_orders(order_ids=[order.pk])

    assert result.refused == [order]
    assert status_of(order) == status
    assert stock(lamp) == (7, 1)


def test_a_paid_order_can_be_cancelled_and_a_deleted_products_line_restocks_nothing() -> None:
    lamp, gone = ProductFactory(stock=10), ProductFactory(stock=10)
    order = buy((lamp, 1), (gone, 1))
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PAID)
    gone.delete()

    assert cancel_orders(order_ids=[order.pk]).cancelled == [order]
    assert stock(lamp) == (10, 2)
    assert OrderLine.objects.filter(order=order).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_cancellations_at_once_restock_once(require_postgres) -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 4))
    start = threading.Barrier(2)

    def cancel():
        start.wait(timeout=10)
        return cancel_orders(order_ids=[order.pk])

    threads = [in_thread(cancel), in_thread(cancel)]
    results = [finish(*t) for t in threads]

    assert sorted(len(r.cancelled) for r in results) == [0, 1]
    assert stock(lamp) == (10, 2)


@pytest.mark.django_db(transaction=True)
def test_a_cancellation_racing_a_checkout_keeps_both(require_postgres) -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 4))

    with checkout_held_open(user=UserFactory(), product=lamp, quantity=5):
        thread, outcome = in_thread(lambda: cancel_orders(order_ids=[order.pk]))
        blocked_on_a_lock()

    assert len(finish(thread, outcome).cancelled) == 1
    assert stock(lamp) == (10 - 4 - 5 + 4, 3)


# --- the admin --------------------------------------------------------------------------------


def test_the_admin_action_cancels_the_selected_orders() -> None:
    lamp = ProductFactory(stock=10)
    placed, shipped, cancelled = buy((lamp, 1)), buy((lamp, 2)), buy((lamp, 3))
    Order.objects.filter(pk=shipped.pk).update(status=Order.Status.SHIPPED)
    cancel_orders(order_ids=[cancelled.pk])
    client = staff_client()

    response = client.post(
        CHANGELIST,
        {
            "action": "cancel_selected_orders",
            "_selected_action": [placed.pk, shipped.pk, cancelled.pk],
        },
        follow=True,
    )

    body = response.content.decode()
    assert f"Cancelled 1 order(s), their items back in stock: {placed.number}." in body
    assert f"Already cancelled, left as they were: {cancelled.number}." in body
    assert f"cannot be cancelled (their goods have left): {shipped.number}." in body
    assert status_of(placed) == Order.Status.CANCELLED
    assert status_of(shipped) == Order.Status.SHIPPED
    assert stock(lamp) == (10 - 2, 5)


def change_url(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/change/"


def opened_change_form(client: Client, order: Order) -> dict[str, str]:
    response = client.get(change_url(order))
    assert response.status_code == 200
    return form_data(response.content.decode(), "order_form")


def test_setting_the_status_to_cancelled_in_the_admin_restocks() -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 3))
    client = staff_client()
    data = opened_change_form(client, order)

    response = client.post(
        change_url(order), {**data, "status": "cancelled", "shipping_name": "Changed"}
    )

    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.shipping_name) == (Order.Status.CANCELLED, "Changed")
    assert stock(lamp) == (10, 2)


def test_a_cancelled_order_cannot_be_reopened_in_the_admin() -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 3))
    client = staff_client()
    data = opened_change_form(client, order)
    cancel_orders(order_ids=[order.pk])  # by someone else, while the page is open

    response = client.post(change_url(order), {**data, "status": "paid"})

    assert response.status_code == 200
    assert "it cannot be reopened" in response.content.decode()
    assert status_of(order) == Order.Status.CANCELLED
    assert stock(lamp) == (10, 2)


def test_a_shipped_order_cannot_be_cancelled_in_the_admin() -> None:
    order = buy((ProductFactory(stock=10), 3))
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SHIPPED)
    client = staff_client()
    data = opened_change_form(client, order)

    response = client.post(change_url(order), {**data, "status": "cancelled"})

    assert response.status_code == 200
    assert "A shipped order cannot be cancelled" in response.content.decode()
    assert status_of(order) == Order.Status.SHIPPED


def test_order_lines_and_totals_are_read_only_in_the_admin() -> None:
    lamp = ProductFactory(stock=10, price=Decimal("4.00"))
    order = buy((lamp, 3))
    line = order.lines.get()
    client = staff_client()
    data = opened_change_form(client, order)

    editable = {"quantity", "unit_price", "product", "product_name", "product_sku", "DELETE"}
    assert not [name for name in data if name.removeprefix("lines-0-") in editable]
    assert "total" not in data and "item_count" not in data
    response = client.post(
        change_url(order),
        {
            **data,
            "total": "1.00",
            "item_count": "1",
            "lines-0-id": line.pk,
            "lines-0-quantity": "1",
            "lines-0-unit_price": "0.01",
        },
    )
    assert response.status_code == 302
    order.refresh_from_db()
    line.refresh_from_db()
    assert (order.total, order.item_count) == (Decimal("12.00"), 3)
    assert (line.quantity, line.unit_price) == (3, Decimal("4.00"))
    # The order line admin shows lines and changes none.
    assert client.get(f"/admin/orders/orderline/{line.pk}/change/").status_code == 200
    assert (
        client.post(f"/admin/orders/orderline/{line.pk}/change/", {"quantity": 1}).status_code
        == 403
    )
    assert client.get("/admin/orders/orderline/add/").status_code == 403
    assert client.get("/admin/orders/order/add/").status_code == 403
    line.refresh_from_db()
    assert line.quantity == 3


def test_staff_who_may_only_view_orders_cannot_cancel_them() -> None:
    from django.contrib.auth.models import Permission

    lamp = ProductFactory(stock=10)
    placed = buy((lamp, 1))
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client = Client()
    client.force_login(viewer)

    assert "cancel_selected_orders" not in client.get(CHANGELIST).content.decode()
    client.post(CHANGELIST, {"action": "cancel_selected_orders", "_selected_action": [placed.pk]})
    assert status_of(placed) == Order.Status.PLACED
    assert stock(lamp)[0] == 9


# --- the API ----------------------------------------------------------------------------------


def api_cancel(client: Client, order: Order):
    return client.post(f"/api/orders/{order.number}/cancel/")


def test_support_cancels_through_the_api_once_and_restocks(settings) -> None:
    from storefront.accounts.roles import SUPPORT
    from tests.factories import StaffFactory

    lamp = ProductFactory(stock=10)
    order = buy((lamp, 3))
    client = Client()
    client.force_login(StaffFactory(roles=[SUPPORT]))

    first = api_cancel(client, order)
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "cancelled"
    assert stock(lamp)[0] == 10
    again = api_cancel(client, order)
    assert again.status_code == 200
    assert stock(lamp)[0] == 10  # restocked once


def test_the_api_refuses_to_cancel_a_shipped_order() -> None:
    lamp = ProductFactory(stock=10)
    order = buy((lamp, 2))
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SHIPPED)
    response = api_cancel(staff_client(), order)
    assert response.status_code == 409
    assert "cannot be cancelled" in response.json()["detail"][0]
    assert stock(lamp)[0] == 8


def test_customers_catalog_managers_and_visitors_cannot_cancel_through_the_api() -> None:
    from storefront.accounts.roles import CATALOG_MANAGERS
    from tests.factories import StaffFactory

    lamp = ProductFactory(stock=10)
    order = buy((lamp, 1))
    assert api_cancel(Client(), order).status_code == 401
    owner = Client()
    owner.force_login(order.user)
    assert api_cancel(owner, order).status_code == 403
    manager = Client()
    manager.force_login(StaffFactory(roles=[CATALOG_MANAGERS]))
    refused = api_cancel(manager, order)
    assert refused.status_code == 403
    assert "orders.change_order" in refused.json()["detail"]
    assert status_of(order) == Order.Status.PLACED
    assert api_cancel(staff_client(), Order(number="SF-NONE-NONE")).status_code == 404
