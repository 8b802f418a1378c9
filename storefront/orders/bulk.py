"""Bulk writes of orders and their lines, for generated data (the seed); apart from services.py,
whose writes are the shop's own (checkout, cancellation, saved carts)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from storefront.bulk_load import TableLoader
from storefront.orders.models import Order, OrderLine

# The columns of bulk-loaded rows, in order (ids included; timestamps as the loader formats them).
ORDER_BULK_COLUMNS = (
    "id",
    "user_id",
    "number",
    "status",
    "total",
    "item_count",
    "shipping_name",
    "shipping_address",
    "created_at",
)
LINE_BULK_COLUMNS = (
    "id",
    "order_id",
    "product_id",
    "product_name",
    "product_sku",
    "unit_price",
    "quantity",
)


def bulk_load_orders(*, loader: TableLoader, rows: Iterable[tuple]) -> int:
    """Write generated orders (ORDER_BULK_COLUMNS) in the caller's transaction, without model
    validation, signals or sales figures; the number written."""
    return loader.load(model=Order, columns=ORDER_BULK_COLUMNS, rows=rows)


def bulk_load_order_lines(*, loader: TableLoader, rows: Iterable[tuple]) -> int:
    """Write generated order lines (LINE_BULK_COLUMNS), their orders already written; the
    number written."""
    return loader.load(model=OrderLine, columns=LINE_BULK_COLUMNS, rows=rows)


@transaction.atomic
def delete_all_orders() -> None:
    """Delete every order and order line. On PostgreSQL with TRUNCATE ... RESTART IDENTITY
    CASCADE, so rows of other tables that point at them go too."""
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        tables = ", ".join(quote(m._meta.db_table) for m in (OrderLine, Order))
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        return
    OrderLine.objects.all().delete()
    Order.objects.all().delete()
