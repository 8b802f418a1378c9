"""Staff cancellations and the sales tables: a cancelled order leaves the daily, per-product
and rolling tables (its day recomputed after the commit), and the tables still equal a full
recomputation from the orders."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from storefront.dashboards.days import sales_day
from storefront.dashboards.models import DailySales, ProductDailySales, ProductSales30d
from storefront.dashboards.sales import refresh_daily_sales
from storefront.dashboards.tests.test_sales import (
    dashboard_figures,
    place,
    recomputed_from_orders,
    table_contents,
)
from storefront.orders.models import Order
from storefront.orders.services import OrderItem, cancel_orders, place_order
from storefront.orders.tests.races import blocked_on_a_lock, checkout_held_open, finish, in_thread
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_cancelled_order_leaves_the_sales_tables(django_capture_on_commit_callbacks) -> None:
    lamp = ProductFactory(price=Decimal("5.00"), stock=50)
    mug = ProductFactory(price=Decimal("2.00"), stock=50)
    kept = place(UserFactory(), (lamp, 1))
    cancelled = place(UserFactory(), (lamp, 2), (mug, 3))
    old = place(UserFactory(), (mug, 1), days_ago=3)
    day, old_day = sales_day(kept.created_at), sales_day(old.created_at)

    with django_capture_on_commit_callbacks(execute=True):
        cancel_orders(order_ids=[cancelled.pk, old.pk])

    daily = DailySales.objects.get(day=day)
    assert (daily.orders, daily.items, daily.revenue) == (1, 1, Decimal("5.00"))
    assert not DailySales.objects.filter(day=old_day).exists()
    assert {(r.product_id, r.quantity) for r in ProductDailySales.objects.all()} == {(lamp.id, 1)}
    assert {(r.product_id, r.quantity) for r in ProductSales30d.objects.all()} == {(lamp.id, 1)}
    assert dashboard_figures() == recomputed_from_orders()
    kept_current = table_contents()
    refresh_daily_sales(days=None)  # a full recomputation has nothing to correct
    assert table_contents() == kept_current


def test_cancelling_twice_recomputes_nothing_more(django_capture_on_commit_callbacks) -> None:
    order = place(UserFactory(), (ProductFactory(price=Decimal("3.00"), stock=5), 2))
    with django_capture_on_commit_callbacks(execute=True):
        cancel_orders(order_ids=[order.pk])
    tables = table_contents()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        cancel_orders(order_ids=[order.pk])

    assert callbacks == []
    assert table_contents() == tables == ([], [], [])


def test_the_admin_action_updates_the_sales_tables(django_capture_on_commit_callbacks) -> None:
    order = place(UserFactory(), (ProductFactory(price=Decimal("3.00"), stock=5), 2))
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/orders/order/",
            {"action": "cancel_selected_orders", "_selected_action": [order.pk]},
        )

    assert response.status_code == 302
    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED
    assert table_contents() == ([], [], [])


@pytest.mark.django_db(transaction=True)
def test_a_cancellation_racing_a_checkout_leaves_the_tables_right(require_postgres) -> None:
    lamp = ProductFactory(price=Decimal("4.00"), stock=50)
    order = place_order(user=UserFactory(), items=[OrderItem(lamp.id, 2)])

    with checkout_held_open(user=UserFactory(), product=lamp, quantity=3):
        thread, outcome = in_thread(lambda: cancel_orders(order_ids=[order.pk]))
        blocked_on_a_lock()
    finish(thread, outcome)

    daily = DailySales.objects.get(day=sales_day(order.created_at))
    assert (daily.orders, daily.items, daily.revenue) == (1, 3, Decimal("12.00"))
    assert dashboard_figures() == recomputed_from_orders()
    lamp.refresh_from_db()
    assert lamp.stock == 50 - 3
