"""Reads of orders: a customer only ever reads their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db.models import Prefetch, QuerySet

from storefront.accounts.models import User
from storefront.orders.models import Order, OrderLine

ORDER_LIST_FIELDS = ("id", "number", "status", "total", "item_count", "created_at", "user_id")
# Orders per history page; pages past the numbered ones are reached by keyset cursors.
ORDER_HISTORY_PAGE_SIZE = 20


def order_history_for(*, user: User) -> QuerySet[Order]:
    """The user's orders, newest first; ordered by (created_at, id) so it pages by keyset."""
    return Order.objects.filter(user=user).only(*ORDER_LIST_FIELDS).order_by("-created_at", "-id")


def order_detail_for(*, user: User, number: str) -> Order:
    """The user's order with its lines; raises Order.DoesNotExist for anyone else's."""
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    ).get(user=user, number=number)


def order_by_number(*, number: str) -> Order:
    """Any customer's order with its lines (staff work); raises Order.DoesNotExist."""
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    ).get(number=number)


ORDER_LINE_API_FIELDS = (
    "id",
    "order",
    "product_name",
    "product_sku",
    "unit_price",
    "quantity",
    "product__slug",
)


def orders_with_lines_for(*, user: User) -> QuerySet[Order]:
    """The user's orders with shipping details, lines and each line's product slug (API list).

    Lines join their product so the API can link to it without a query per line.
    """
    orders = order_history_for(user=user).only(
        *ORDER_LIST_FIELDS, "shipping_name", "shipping_address"
    )
    return orders.prefetch_related(
        Prefetch(
            "lines",
            queryset=OrderLine.objects.select_related("product")
            .only(*ORDER_LINE_API_FIELDS)
            .order_by("id"),
        )
    )


EXPORT_COLUMNS = (
    "number",
    "created_at",
    "status",
    "user__username",
    "user__email",
    "item_count",
    "total",
)


def order_export_rows(
    *, since: dt.date | None = None, until: dt.date | None = None
) -> Iterator[tuple]:
    """Every order (oldest first) as a tuple of EXPORT_COLUMNS, streamed from the database.

    `iterator()` uses a server-side cursor on PostgreSQL, so a million orders never sit in
    memory at once.
    """
    qs = Order.objects.order_by("created_at", "id")
    if since:
        qs = qs.filter(created_at__date__gte=since)
    if until:
        qs = qs.filter(created_at__date__lte=until)
    return qs.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000)
