"""Writes of the sales tables: DailySales, ProductDailySales and ProductSales30d (the rolling
window read by the top-products table; SalesWindow holds its first day). Writers:

* the checkout: record_order adds its order to each table inside the checkout's transaction (it
  receives storefront.orders.events.order_placed, see signals.py), holding the sales advisory
  lock SHARED from its upserts to its commit;
* recomputations (the nightly refresh_daily_sales, and recompute_sales_days after an order's
  status changes) reconcile a range of days with the orders: see sales_recompute.py for how
  they run beside checkouts without losing or doubling an order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from storefront.dashboards.days import WINDOW_DAYS, sales_day, sales_today
from storefront.dashboards.models import DailySales, ProductDailySales, ProductSales30d, SalesWindow
from storefront.dashboards.sales_locks import sales_lock
from storefront.dashboards.sales_recompute import SalesRefresh, recompute_range
from storefront.dashboards.selectors import sales_window_first_day
from storefront.orders.models import Order, OrderLine

# The nightly task reconciles this many days back (a little more than the dashboard's 30, so a
# late status change near the window's edge is caught too).
DEFAULT_REFRESH_DAYS = 35


_DAILY_TABLE = DailySales._meta.db_table
_PRODUCT_TABLE = ProductDailySales._meta.db_table
_RECENT_TABLE = ProductSales30d._meta.db_table
_WINDOW_TABLE = SalesWindow._meta.db_table


# INSERT ... ON CONFLICT DO UPDATE increments the row in one statement, atomically, whether or
# not the day's row exists yet. bulk_create(update_conflicts=True) can only overwrite columns
# with the new values, not add to them; get_or_create + F() would take two or three statements
# and race on the first insert of a day (IntegrityError). PostgreSQL and SQLite (3.24+) share
# this syntax; other backends take the F() path in _increment_portably.
_DAILY_UPSERT = f"""
    INSERT INTO {_DAILY_TABLE} (day, orders, items, revenue) VALUES (%s, %s, %s, %s)
    ON CONFLICT (day) DO UPDATE SET
        orders = {_DAILY_TABLE}.orders + excluded.orders,
        items = {_DAILY_TABLE}.items + excluded.items,
        revenue = {_DAILY_TABLE}.revenue + excluded.revenue
"""  # noqa: S608 - the table name comes from the model; values are parameters
_PRODUCT_UPSERT = f"""
    INSERT INTO {_PRODUCT_TABLE}
        (day, product_id, product_name, product_sku, quantity, orders, revenue)
    VALUES {{values}}
    ON CONFLICT (day, product_id, product_name, product_sku) DO UPDATE SET
        quantity = {_PRODUCT_TABLE}.quantity + excluded.quantity,
        orders = {_PRODUCT_TABLE}.orders + excluded.orders,
        revenue = {_PRODUCT_TABLE}.revenue + excluded.revenue
"""  # noqa: S608 - the table name comes from the model; values are parameters
# The rolling table counts the order only when its day is in the window (always, for a real
# checkout; not for one back-dated in a test). Without a SalesWindow row, the window is the last
# 30 days by the database's clock.
_RECENT_UPSERT = f"""
    INSERT INTO {_RECENT_TABLE}
        (product_id, product_name, product_sku, quantity, orders, revenue)
    SELECT v.product_id, v.product_name, v.product_sku, v.quantity, v.orders, v.revenue
    FROM (VALUES {{values}}) AS v (product_id, product_name, product_sku, quantity, orders, revenue)
    WHERE %s::date >= COALESCE(
        (SELECT first_day FROM {_WINDOW_TABLE} WHERE id = 1),
        (now() AT TIME ZONE %s)::date - {WINDOW_DAYS - 1}
    )
    ON CONFLICT (product_id, product_name, product_sku) DO UPDATE SET
        quantity = {_RECENT_TABLE}.quantity + excluded.quantity,
        orders = {_RECENT_TABLE}.orders + excluded.orders,
        revenue = {_RECENT_TABLE}.revenue + excluded.revenue
"""  # noqa: S608 - the table names come from the models; values are parameters


def _counts(status: str) -> bool:
    return status in Order.REVENUE_STATUSES


def record_order(*, order: Order, lines: Sequence[OrderLine]) -> None:
    """Add a just-placed order to its day's figures, inside the checkout's transaction.

    Runs as the receiver of orders.events.order_placed, which the checkout sends last in that
    transaction: the upsert locks the day's DailySales row (every checkout of the day writes
    it) until the commit, so anything after it would hold up other checkouts.
    """
    if not _counts(order.status):
        return
    day = sales_day(order.created_at)
    sales_lock(exclusive=False)
    # Lines in product order (place_order sorts them), so two checkouts lock rows in one order.
    lines = sorted(lines, key=lambda line: line.product_id or 0)
    if connection.vendor != "postgresql":
        if connection.vendor == "sqlite":
            _upsert_daily(day=day, order=order, lines=lines)
        else:
            _increment_portably(day=day, order=order, lines=lines)
        if day >= sales_window_first_day():
            _increment_recent_portably(lines=lines)
        return
    _upsert_daily(day=day, order=order, lines=lines)
    if lines:
        recent_rows = [_line_figures(line) for line in lines]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s::numeric)"] * len(recent_rows))
        with connection.cursor() as cursor:
            cursor.execute(
                _RECENT_UPSERT.format(values=values),
                [value for row in recent_rows for value in row] + [day, settings.TIME_ZONE],
            )


def _line_figures(line: OrderLine) -> tuple:
    """(product id, name, SKU, units, orders, revenue) one order line adds to a product row."""
    return (
        line.product_id,
        line.product_name,
        line.product_sku,
        line.quantity,
        1,
        line.unit_price * line.quantity,
    )


def _upsert_daily(*, day: dt.date, order: Order, lines: Sequence[OrderLine]) -> None:
    product_rows = [(day, *_line_figures(line)) for line in lines]
    with connection.cursor() as cursor:
        cursor.execute(_DAILY_UPSERT, [day, 1, order.item_count, order.total])
        if product_rows:
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(product_rows))
            cursor.execute(
                _PRODUCT_UPSERT.format(values=values),
                [value for row in product_rows for value in row],
            )


def _increment_portably(*, day: dt.date, order: Order, lines: Sequence[OrderLine]) -> None:
    DailySales.objects.get_or_create(day=day)
    DailySales.objects.filter(day=day).update(
        orders=F("orders") + 1,
        items=F("items") + order.item_count,
        revenue=F("revenue") + order.total,
    )
    for line in lines:
        _increment_line_portably(ProductDailySales, line, day=day)


def _increment_recent_portably(*, lines: Sequence[OrderLine]) -> None:
    for line in lines:
        _increment_line_portably(ProductSales30d, line)


def _increment_line_portably(
    model: type[ProductDailySales] | type[ProductSales30d], line: OrderLine, **extra_key: object
) -> None:
    key = {
        **extra_key,
        "product_id": line.product_id,
        "product_name": line.product_name,
        "product_sku": line.product_sku,
    }
    model.objects.get_or_create(**key)
    model.objects.filter(**key).update(
        quantity=F("quantity") + line.quantity,
        orders=F("orders") + 1,
        revenue=F("revenue") + line.unit_price * line.quantity,
    )


def refresh_daily_sales(*, days: int | None = None) -> SalesRefresh:
    """Recompute the sales tables from the orders: the last `days` days (today included), or
    every day when `days` is None. Days in the range left without revenue lose their rows. A
    range covering the last 30 days also rebuilds ProductSales30d for today's window."""
    if days is not None and days < 1:
        raise ValueError("days must be 1 or more (or None for every day).")
    first = sales_today() - dt.timedelta(days=days - 1) if days else None
    return recompute_range(first=first, last=None)


def recompute_sales_days(*, days: Iterable[dt.date]) -> None:
    """Recompute single days (an order there changed status or total outside the checkout)."""
    for day in sorted(set(days)):
        recompute_range(first=day, last=day)


def recompute_sales_days_after_commit(*, days: Iterable[dt.date]) -> None:
    """recompute_sales_days once the current transaction commits (each day once).

    After, not inside: a recomputation may wait for the nightly refresh's aggregation (the
    recomputations' lock), and the caller's row locks (orders, restocked products) must not be
    held that long. robust: the order change is committed; a failure here is logged and the
    nightly refresh repairs the days.
    """
    pending = sorted(set(days))
    if pending:
        transaction.on_commit(lambda: recompute_sales_days(days=pending), robust=True)


def record_cancellations(*, orders: Iterable[Order]) -> None:
    """Staff cancelled these orders (their status set by QuerySet.update(), which sends no
    model signal; orders.events.orders_cancelled brings them here): their days are recomputed
    after the commit, which takes them out of the daily and per-product tables and of the
    rolling 30 days."""
    recompute_sales_days_after_commit(days=[sales_day(order.created_at) for order in orders])
