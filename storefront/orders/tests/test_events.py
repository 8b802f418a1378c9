"""The orders app announces checkouts and cancellations through storefront.orders.events and
imports nothing from the dashboards (which listen): the two apps no longer import each other."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from storefront.dashboards.days import sales_day
from storefront.dashboards.models import DailySales, ProductDailySales
from storefront.orders import events
from storefront.orders.models import Order
from storefront.orders.services import OrderItem, cancel_orders, place_order
from tests.factories import ProductFactory, UserFactory

ORDERS_APP = Path(events.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_orders_app_imports_nothing_from_the_dashboards() -> None:
    modules = [path for path in ORDERS_APP.rglob("*.py") if "tests" not in path.parts]
    assert ORDERS_APP / "services.py" in modules
    offenders = {
        str(path.relative_to(ORDERS_APP)): sorted(
            name for name in _imported_modules(path) if name.startswith("storefront.dashboards")
        )
        for path in modules
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.django_db
def test_a_placed_order_reaches_the_sales_tables_inside_the_checkout_transaction(
    django_capture_on_commit_callbacks,
) -> None:
    lamp = ProductFactory(price=Decimal("4.00"), stock=10)
    with django_capture_on_commit_callbacks(execute=False):
        order = place_order(user=UserFactory(), items=[OrderItem(product_id=lamp.id, quantity=3)])
        # Before any commit: the receiver ran synchronously, in the checkout's transaction.
        daily = DailySales.objects.get(day=sales_day(order.created_at))
    assert (daily.orders, daily.items, daily.revenue) == (1, 3, Decimal("12.00"))
    assert ProductDailySales.objects.get(product=lamp).quantity == 3


@pytest.mark.django_db
def test_cancelled_orders_are_announced_and_leave_the_sales_tables_after_the_commit(
    django_capture_on_commit_callbacks,
) -> None:
    lamp = ProductFactory(price=Decimal("4.00"), stock=10)
    order = place_order(user=UserFactory(), items=[OrderItem(product_id=lamp.id, quantity=2)])
    heard: list[list[Order]] = []

    def listener(sender: type, orders: list[Order], **kwargs: object) -> None:
        heard.append(list(orders))

    events.orders_cancelled.connect(listener, sender=Order)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            cancel_orders(order_ids=[order.pk])
            assert DailySales.objects.filter(day=sales_day(order.created_at)).exists()
    finally:
        events.orders_cancelled.disconnect(listener, sender=Order)
    assert [[o.pk for o in orders] for orders in heard] == [[order.pk]]
    assert heard[0][0].status == Order.Status.CANCELLED
    assert not DailySales.objects.filter(day=sales_day(order.created_at)).exists()
