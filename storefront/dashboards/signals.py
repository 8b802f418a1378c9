"""Keeps the sales tables right: the receivers the app connects in DashboardsConfig.ready.

The orders app announces its checkouts and staff cancellations (storefront.orders.events) without
importing this app: an order placed is added to its day by sales.record_order inside the
checkout's transaction; cancelled orders (their status set by QuerySet.update(), which sends no
model signal) have their days recomputed after the commit (sales.record_cancellations).

Any other save of an order that moves it into or out of Order.REVENUE_STATUSES, or changes a
counted order's total or item count (admin, shell), recomputes that order's day after the
commit; so does deleting a counted order. Other code that changes orders in bulk must tell the
sales tables itself; the nightly refresh catches anything missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from storefront.dashboards.days import sales_day
from storefront.dashboards.sales import (
    recompute_sales_days_after_commit,
    record_cancellations,
    record_order,
)
from storefront.orders.events import order_placed, orders_cancelled
from storefront.orders.models import Order, OrderLine

_TRACKED = ("status", "total", "item_count")


@receiver(order_placed, sender=Order, dispatch_uid="dashboards-order-placed")
def order_placed_to_sales(
    sender: type, order: Order, lines: Sequence[OrderLine], **kwargs: Any
) -> None:
    record_order(order=order, lines=lines)


@receiver(orders_cancelled, sender=Order, dispatch_uid="dashboards-orders-cancelled")
def orders_cancelled_to_sales(sender: type, orders: Sequence[Order], **kwargs: Any) -> None:
    record_cancellations(orders=orders)


def _figures(order: Order) -> tuple | None:
    """(counted, total, item_count) as loaded, or None when a field was deferred."""
    values = order.__dict__
    if any(name not in values for name in _TRACKED):
        return None
    counted = values["status"] in Order.REVENUE_STATUSES
    return (counted, values["total"], values["item_count"]) if counted else (False,)


def _recompute_after_commit(order: Order) -> None:
    recompute_sales_days_after_commit(days=[sales_day(order.created_at)])


@receiver(post_init, sender=Order, dispatch_uid="dashboards-order-loaded")
def order_loaded(sender: type, instance: Order, **kwargs: Any) -> None:
    instance._sales_figures = _figures(instance)


@receiver(post_save, sender=Order, dispatch_uid="dashboards-order-saved")
def order_saved(sender: type, instance: Order, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_sales_figures", None)
    after = _figures(instance)
    instance._sales_figures = after
    if created:
        return  # the checkout records its own orders (order_placed)
    if before is None or after is None or before != after:
        _recompute_after_commit(instance)


@receiver(post_delete, sender=Order, dispatch_uid="dashboards-order-deleted")
def order_deleted(sender: type, instance: Order, **kwargs: Any) -> None:
    if instance.status in Order.REVENUE_STATUSES:
        _recompute_after_commit(instance)
