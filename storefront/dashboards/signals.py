"""Keeps the sales tables right when an order is saved outside the checkout (admin, shell).

The checkout adds its order itself (services.record_order). Any later save of an order that
moves it into or out of Order.REVENUE_STATUSES, or changes a counted order's total or item
count, recomputes that order's day after the commit; so does deleting a counted order.
QuerySet.update() sends no signals: code that changes orders in bulk must tell the sales tables
itself, as the staff cancellation does (services.record_cancellations); the nightly refresh
catches anything missed.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from storefront.dashboards.days import sales_day
from storefront.orders.models import Order

logger = logging.getLogger(__name__)

_TRACKED = ("status", "total", "item_count")


def _figures(order: Order) -> tuple | None:
    """(counted, total, item_count) as loaded, or None when a field was deferred."""
    values = order.__dict__
    if any(name not in values for name in _TRACKED):
        return None
    counted = values["status"] in Order.REVENUE_STATUSES
    return (counted, values["total"], values["item_count"]) if counted else (False,)


def _recompute_after_commit(order: Order) -> None:
    from storefront.dashboards.services import recompute_sales_days_after_commit

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
        return  # the checkout records its own orders
    if before is None or after is None or before != after:
        _recompute_after_commit(instance)


@receiver(post_delete, sender=Order, dispatch_uid="dashboards-order-deleted")
def order_deleted(sender: type, instance: Order, **kwargs: Any) -> None:
    if instance.status in Order.REVENUE_STATUSES:
        _recompute_after_commit(instance)
