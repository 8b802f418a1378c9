"""Writes of the dashboards app: the denormalized sales tables and the order exports.

Sales tables: DailySales, ProductDailySales and ProductSales30d (the rolling window read by the
top-products table; SalesWindow holds its first day). Writers:

* the checkout (record_order) adds its order to each table inside its own transaction, holding
  the sales advisory lock SHARED from its upserts to its commit;
* recomputations (the nightly refresh_daily_sales, and recompute_sales_days after an order's
  status changes) reconcile a range of days with the orders.

A recomputation on PostgreSQL never holds the lock that checkouts wait for while it aggregates:

1. It takes a second advisory lock, RECOMPUTE_LOCK_KEY (transaction-level), that only
   recomputations take: two of them never overlap. Checkouts do not touch it.
2. Without the sales lock it builds a *difference* table per sales table, each in ONE statement
   (so one snapshot S): the aggregate of the orders visible in S minus the table's rows visible in
   S, keeping only the keys whose figures are distinct (vanished keys give minus the row, missing
   keys the whole aggregate). Because every checkout writes its order and its increments in one
   transaction, S sees both or neither: the difference is exactly the table's error as of S, not
   "the checkouts committed since S". This is the long part (the nightly 35 days: seconds).
3. It then takes the sales lock EXCLUSIVE (waiting for checkouts between their upserts and their
   commit: milliseconds) and applies the differences as increments: UPDATE the rows whose key is
   in the difference, INSERT the missing keys, DELETE the rows left at zero. Orders committed
   after S were added by their own checkout and are kept, since the differences are added, not
   written over: nothing is lost or counted twice. The lock is held from here to the commit,
   proportional to the number of wrong rows (normally a day's worth or less), not to the range.

A change committed after S (a cancellation) is not in the difference: its own recomputation runs
after its commit, and, by step 1, after this one, so it sees the corrected tables.
ProductSales30d's difference is "ProductDailySales over the new window (plus the pending daily
difference) minus ProductSales30d" for a refresh covering the window, and the daily difference
restricted to the window's days otherwise. The window moves only with the nightly refresh, so
between midnight and that refresh the table covers 31 days (yesterday's window plus today).

SQLite (embedded mode) serialises writers by itself: there a recomputation rewrites the range in
one transaction, as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, QuerySet, Sum
from django.utils import timezone

from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.dashboards.days import (
    WINDOW_DAYS,
    day_start,
    sales_day,
    sales_today,
    truncate_to_sales_day,
)
from storefront.dashboards.forms import ExportFilterForm
from storefront.dashboards.models import (
    DailySales,
    OrderExport,
    ProductDailySales,
    ProductSales30d,
    SalesWindow,
)
from storefront.dashboards.order_csv import order_csv_lines
from storefront.orders.models import Order, OrderLine
from storefront.orders.selectors import order_export_rows

logger = logging.getLogger(__name__)

# The nightly task reconciles this many days back (a little more than the dashboard's 30, so a
# late status change near the window's edge is caught too).
DEFAULT_REFRESH_DAYS = 35

# PostgreSQL advisory locks: checkouts take SALES_LOCK_KEY shared, a recomputation's apply step
# exclusive (see _sales_lock); recomputations serialise among themselves on RECOMPUTE_LOCK_KEY.
SALES_LOCK_KEY = 0x5F_DA17_5A1E
RECOMPUTE_LOCK_KEY = 0x5F_DA17_5A1F
CENT = Decimal("0.01")

_DAILY_TABLE = DailySales._meta.db_table
_PRODUCT_TABLE = ProductDailySales._meta.db_table
_RECENT_TABLE = ProductSales30d._meta.db_table
_WINDOW_TABLE = SalesWindow._meta.db_table
_PRODUCTS = Product._meta.db_table

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


def _sales_lock(*, exclusive: bool) -> None:
    """Checkouts take this lock shared, a recomputation's apply step exclusive (until commit).

    Under it the apply step sees no checkout between its upserts and its commit, so it never
    waits on (or deadlocks with) a checkout's row locks; new checkouts wait for the apply step
    (milliseconds), never for the aggregation (see the module docstring). SQLite serialises
    writers by itself.
    """
    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [SALES_LOCK_KEY])


def window_first_day() -> dt.date:
    """The first day ProductSales30d counts."""
    stored = SalesWindow.objects.filter(pk=1).values_list("first_day", flat=True).first()
    return stored or sales_today() - dt.timedelta(days=WINDOW_DAYS - 1)


def record_order(*, order: Order, lines: Sequence[OrderLine]) -> None:
    """Add a just-placed order to its day's figures, inside the checkout's transaction.

    Call it last in that transaction: the upsert locks the day's DailySales row (every checkout
    of the day writes it) until the commit, so anything after it would hold up other checkouts.
    """
    if not _counts(order.status):
        return
    day = sales_day(order.created_at)
    _sales_lock(exclusive=False)
    # Lines in product order (place_order sorts them), so two checkouts lock rows in one order.
    lines = sorted(lines, key=lambda line: line.product_id or 0)
    if connection.vendor != "postgresql":
        if connection.vendor == "sqlite":
            _upsert_daily(day=day, order=order, lines=lines)
        else:
            _increment_portably(day=day, order=order, lines=lines)
        if day >= window_first_day():
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


@dataclass(frozen=True)
class SalesRefresh:
    first_day: dt.date | None  # None: from the first order on
    last_day: dt.date | None  # None: up to the last order
    days: int  # days with revenue in the range
    product_rows: int  # per-product-day rows changed (PostgreSQL) or written (SQLite)
    seconds: float  # the whole recomputation
    # How long the exclusive sales lock was held (from asking for it to the commit): the most
    # a checkout waited for this recomputation.
    locked_seconds: float = 0.0
    window_first_day: dt.date | None = None  # ProductSales30d's window, when it was rebuilt


def refresh_daily_sales(*, days: int | None = None) -> SalesRefresh:
    """Recompute the sales tables from the orders: the last `days` days (today included), or
    every day when `days` is None. Days in the range left without revenue lose their rows. A
    range covering the last 30 days also rebuilds ProductSales30d for today's window."""
    if days is not None and days < 1:
        raise ValueError("days must be 1 or more (or None for every day).")
    first = sales_today() - dt.timedelta(days=days - 1) if days else None
    return _recompute(first=first, last=None)


def recompute_sales_days(*, days: Iterable[dt.date]) -> None:
    """Recompute single days (an order there changed status or total outside the checkout)."""
    for day in sorted(set(days)):
        _recompute(first=day, last=day)


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
    signal): their days are recomputed after the commit, which takes them out of the daily and
    per-product tables and of the rolling 30 days."""
    recompute_sales_days_after_commit(days=[sales_day(order.created_at) for order in orders])


def _ranges(
    first: dt.date | None, last: dt.date | None
) -> tuple[QuerySet[Order], QuerySet[OrderLine]]:
    orders = Order.objects.filter(status__in=Order.REVENUE_STATUSES)
    lines = OrderLine.objects.filter(order__status__in=Order.REVENUE_STATUSES)
    if first:
        orders = orders.filter(created_at__gte=day_start(first))
        lines = lines.filter(order__created_at__gte=day_start(first))
    if last:
        end = day_start(last + dt.timedelta(days=1))
        orders = orders.filter(created_at__lt=end)
        lines = lines.filter(order__created_at__lt=end)
    return orders, lines


def _daily_aggregate(orders: QuerySet[Order]) -> QuerySet:
    return (
        orders.annotate(day=truncate_to_sales_day("created_at"))
        .values("day")
        .annotate(n=Count("id"), items=Sum("item_count"), revenue=Sum("total"))
        .order_by()
    )


def _product_aggregate(lines: QuerySet[OrderLine]) -> QuerySet:
    return (
        lines.annotate(day=truncate_to_sales_day("order__created_at"))
        .values("day", "product_id", "product_name", "product_sku")
        # revenue first: after `quantity=Sum(...)`, F("quantity") would mean that sum.
        .annotate(
            revenue=Sum(
                ExpressionWrapper(
                    F("unit_price") * F("quantity"),
                    output_field=DecimalField(max_digits=14, decimal_places=2),
                )
            )
        )
        .annotate(quantity=Sum("quantity"), orders=Count("order_id", distinct=True))
        .order_by()
    )


def _day_filter(first: dt.date | None, last: dt.date | None) -> tuple[str, list]:
    sql, params = "TRUE", []
    if first:
        sql += " AND day >= %s"
        params.append(first)
    if last:
        sql += " AND day <= %s"
        params.append(last)
    return sql, params


def _recompute(*, first: dt.date | None, last: dt.date | None) -> SalesRefresh:
    if connection.vendor != "postgresql":
        return _recompute_in_place(first=first, last=last)
    started = time.monotonic()
    new_first = sales_today() - dt.timedelta(days=WINDOW_DAYS - 1)
    # A range reaching today and back to the window's first day rebuilds the rolling table for
    # the new window; a narrower one (a day's recomputation) corrects it for its days only.
    rebuild_window = last is None and (first is None or first <= new_first)
    where, where_params = _day_filter(first, last)
    orders, lines = _ranges(first, last)
    daily_sql, daily_params = _daily_aggregate(orders).query.sql_with_params()
    product_sql, product_params = _product_aggregate(lines).query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RECOMPUTE_LOCK_KEY])
        cursor.execute("DROP TABLE IF EXISTS sales_fix_daily, sales_fix_product, sales_fix_recent")
        # Each difference in one statement: one snapshot for the orders and the table.
        cursor.execute(
            f"""
            CREATE TEMP TABLE sales_fix_daily ON COMMIT DROP AS
            WITH computed AS (
                SELECT day, n AS orders, COALESCE(items, 0) AS items, revenue
                FROM ({daily_sql}) AS aggregate
            ), stored AS (
                SELECT day, orders, items, revenue FROM {_DAILY_TABLE} WHERE {where}
            )
            SELECT COALESCE(c.day, s.day) AS day,
                   COALESCE(c.orders, 0) - COALESCE(s.orders, 0) AS orders,
                   COALESCE(c.items, 0) - COALESCE(s.items, 0) AS items,
                   COALESCE(c.revenue, 0) - COALESCE(s.revenue, 0) AS revenue
            FROM computed c FULL JOIN stored s ON c.day = s.day
            WHERE c.day IS NULL
               OR (c.orders, c.items, c.revenue) IS DISTINCT FROM (s.orders, s.items, s.revenue)
            """,  # noqa: S608 - SQL from the ORM and the models; values are parameters
            [*daily_params, *where_params],
        )
        # Product keys may hold a NULL product (deleted product): grouping, unlike a join,
        # matches NULL with NULL. "stored" sums duplicates (NULLs are distinct to the unique
        # constraint, so a deleted product's rows can repeat a key).
        cursor.execute(
            f"""
            CREATE TEMP TABLE sales_fix_product ON COMMIT DROP AS
            SELECT day, product_id, product_name, product_sku,
                   sum(quantity)::integer AS quantity, sum(orders)::integer AS orders,
                   sum(revenue) AS revenue
            FROM (
                SELECT day, product_id, product_name, product_sku, quantity, orders, revenue
                FROM ({product_sql}) AS aggregate
                UNION ALL
                SELECT day, product_id, product_name, product_sku, -quantity, -orders, -revenue
                FROM {_PRODUCT_TABLE} WHERE {where}
            ) AS both_sides
            GROUP BY day, product_id, product_name, product_sku
            HAVING (sum(quantity), sum(orders), sum(revenue)) IS DISTINCT FROM (0, 0, 0)
                OR count(*) > 2
            """,  # noqa: S608 - SQL from the ORM and the models; values are parameters
            [*product_params, *where_params],
        )
        if rebuild_window:
            # The new window's figures: ProductDailySales (as corrected by the pending
            # difference) over its days, minus what the rolling table holds.
            cursor.execute(
                f"""
                CREATE TEMP TABLE sales_fix_recent ON COMMIT DROP AS
                SELECT product_id, product_name, product_sku,
                       sum(quantity)::integer AS quantity, sum(orders)::integer AS orders,
                       sum(revenue) AS revenue
                FROM (
                    SELECT product_id, product_name, product_sku, quantity, orders, revenue
                    FROM {_PRODUCT_TABLE} WHERE day >= %s
                    UNION ALL
                    SELECT product_id, product_name, product_sku, quantity, orders, revenue
                    FROM sales_fix_product WHERE day >= %s
                    UNION ALL
                    SELECT product_id, product_name, product_sku, -quantity, -orders, -revenue
                    FROM {_RECENT_TABLE}
                ) AS both_sides
                GROUP BY product_id, product_name, product_sku
                HAVING (sum(quantity), sum(orders), sum(revenue)) IS DISTINCT FROM (0, 0, 0)
                """,  # noqa: S608 - table names from the models; values are parameters
                [new_first, new_first],
            )
        else:
            cursor.execute(
                f"""
                CREATE TEMP TABLE sales_fix_recent ON COMMIT DROP AS
                SELECT product_id, product_name, product_sku,
                       sum(quantity)::integer AS quantity, sum(orders)::integer AS orders,
                       sum(revenue) AS revenue
                FROM sales_fix_product
                WHERE day >= COALESCE(
                    (SELECT first_day FROM {_WINDOW_TABLE} WHERE id = 1),
                    (now() AT TIME ZONE %s)::date - {WINDOW_DAYS - 1}
                )
                GROUP BY product_id, product_name, product_sku
                """,  # noqa: S608 - table names from the models; values are parameters
                [settings.TIME_ZONE],
            )

        # The critical section: checkouts wait from here to the commit.
        lock_requested = time.monotonic()
        _sales_lock(exclusive=True)
        _apply_difference(cursor, table=_DAILY_TABLE, fix="sales_fix_daily", keys=["day"])
        product_rows = _apply_difference(
            cursor,
            table=_PRODUCT_TABLE,
            fix="sales_fix_product",
            keys=["day", "product_id", "product_name", "product_sku"],
            figures=["quantity", "orders", "revenue"],
        )
        _apply_difference(
            cursor,
            table=_RECENT_TABLE,
            fix="sales_fix_recent",
            keys=["product_id", "product_name", "product_sku"],
            figures=["quantity", "orders", "revenue"],
        )
        if rebuild_window:
            cursor.execute(
                f"INSERT INTO {_WINDOW_TABLE} (id, first_day) VALUES (1, %s) "  # noqa: S608 - model table
                "ON CONFLICT (id) DO UPDATE SET first_day = excluded.first_day",
                [new_first],
            )
        cursor.execute("DROP TABLE sales_fix_daily, sales_fix_product, sales_fix_recent")
        cursor.execute(
            f"SELECT count(*) FROM {_DAILY_TABLE} WHERE {where}",  # noqa: S608 - model table, params
            where_params,
        )
        (days_with_revenue,) = cursor.fetchone()
    finished = time.monotonic()
    return SalesRefresh(
        first_day=first,
        last_day=last,
        days=days_with_revenue,
        product_rows=product_rows,
        seconds=finished - started,
        locked_seconds=finished - lock_requested,
        window_first_day=new_first if rebuild_window else None,
    )


def _apply_difference(
    cursor,
    *,
    table: str,
    fix: str,
    keys: list[str],
    figures: Sequence[str] = ("orders", "items", "revenue"),
) -> int:
    """Add the difference table `fix` to `table` (under the exclusive sales lock): UPDATE the
    rows of its keys, INSERT the keys missing, DELETE the rows left at zero. Returns the number
    of keys corrected.

    Keys with a NULL product (a deleted product, kept by its snapshot) are merged instead: their
    rows are deleted and one row with the sum inserted, since NULL never matches a key.
    """
    cursor.execute(f"SELECT count(*) FROM {fix}")  # noqa: S608 - our own temp table
    (changed,) = cursor.fetchone()
    if not changed:
        return 0
    nullable = "product_id" in keys
    if nullable:
        # A product deleted since the difference was computed: its rows are NULL-keyed now.
        cursor.execute(
            f"UPDATE {fix} SET product_id = NULL WHERE product_id IS NOT NULL "  # noqa: S608 - our tables
            f"AND NOT EXISTS (SELECT 1 FROM {_PRODUCTS} p WHERE p.id = {fix}.product_id)"
        )
    key_list = ", ".join(keys)
    figure_list = ", ".join(figures)
    match = " AND ".join(f"t.{k} = f.{k}" for k in keys)
    not_null = "f.product_id IS NOT NULL" if nullable else "TRUE"
    zero = " AND ".join(f"t.{c} = 0" for c in figures)
    cursor.execute(
        f"UPDATE {table} AS t SET "  # noqa: S608 - names from the models and our temp table
        + ", ".join(f"{c} = t.{c} + f.{c}" for c in figures)
        + f" FROM {fix} AS f WHERE {not_null} AND {match}"
    )
    selected = ", ".join([*(f"f.{k}" for k in keys), *(f"f.{c}" for c in figures)])
    not_negative = " AND ".join(f"f.{c} >= 0" for c in figures)
    not_zero = " OR ".join(f"f.{c} <> 0" for c in figures)
    cursor.execute(
        f"""
        INSERT INTO {table} ({key_list}, {figure_list}) SELECT {selected} FROM {fix} AS f
        WHERE {not_null} AND {not_negative} AND ({not_zero})
          AND NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match})
        """  # noqa: S608 - names from the models and our temp table
    )
    cursor.execute(
        f"DELETE FROM {table} AS t USING {fix} AS f "  # noqa: S608 - as above
        f"WHERE {not_null} AND {match} AND {zero}"
    )
    if nullable:
        other_keys = [k for k in keys if k != "product_id"]
        other_match = " AND ".join(f"t.{k} = f.{k}" for k in other_keys)
        sums = ", ".join(f"sum({c}) AS {c}" for c in figures)
        cursor.execute(
            f"""
            WITH gone AS (
                DELETE FROM {table} AS t USING (
                    SELECT DISTINCT {", ".join(other_keys)} FROM {fix} WHERE product_id IS NULL
                ) AS f
                WHERE t.product_id IS NULL AND {other_match}
                RETURNING {", ".join("t." + k for k in other_keys)}, {
                ", ".join("t." + c for c in figures)
            }
            ), merged AS (
                SELECT {", ".join(other_keys)}, {sums} FROM (
                    SELECT {", ".join(other_keys)}, {figure_list} FROM gone
                    UNION ALL
                    SELECT {", ".join(other_keys)}, {figure_list}
                    FROM {fix} WHERE product_id IS NULL
                ) AS both_sides
                GROUP BY {", ".join(other_keys)}
            )
            INSERT INTO {table} ({", ".join(other_keys)}, product_id, {figure_list})
            SELECT {", ".join(other_keys)}, NULL, {figure_list} FROM merged
            WHERE {" OR ".join(f"{c} <> 0" for c in figures)}
            """  # noqa: S608 - names from the models and our temp table
        )
    return changed


@transaction.atomic
def _recompute_in_place(*, first: dt.date | None, last: dt.date | None) -> SalesRefresh:
    """SQLite and other backends: rewrite the range in one transaction (writers are
    serialised by the database), then rebuild the rolling table from ProductDailySales."""
    started = time.monotonic()
    orders, lines = _ranges(first, last)
    daily = DailySales.objects.all()
    per_product = ProductDailySales.objects.all()
    if first:
        daily = daily.filter(day__gte=first)
        per_product = per_product.filter(day__gte=first)
    if last:
        daily = daily.filter(day__lte=last)
        per_product = per_product.filter(day__lte=last)
    day_rows = [
        DailySales(
            day=row["day"],
            orders=row["n"],
            items=row["items"] or 0,
            # SQLite sums decimals as floats (988.800000000001): back to cents.
            revenue=Decimal(row["revenue"] or 0).quantize(CENT),
        )
        for row in _daily_aggregate(orders)
    ]
    DailySales.objects.bulk_create(
        day_rows,
        update_conflicts=True,
        unique_fields=["day"],
        update_fields=["orders", "items", "revenue"],
        batch_size=500,
    )
    daily.exclude(day__in=[row.day for row in day_rows]).delete()
    per_product.delete()
    product_rows = ProductDailySales.objects.bulk_create(
        [
            ProductDailySales(
                day=row["day"],
                product_id=row["product_id"],
                product_name=row["product_name"],
                product_sku=row["product_sku"],
                quantity=row["quantity"],
                orders=row["orders"],
                revenue=Decimal(row["revenue"] or 0).quantize(CENT),
            )
            for row in _product_aggregate(lines).iterator()
        ],
        batch_size=500,
    )
    new_first = sales_today() - dt.timedelta(days=WINDOW_DAYS - 1)
    rebuild_window = last is None and (first is None or first <= new_first)
    window_first = new_first if rebuild_window else window_first_day()
    ProductSales30d.objects.all().delete()
    ProductSales30d.objects.bulk_create(
        [
            ProductSales30d(
                product_id=row["product_id"],
                product_name=row["product_name"],
                product_sku=row["product_sku"],
                quantity=row["units"],
                orders=row["n"],
                revenue=Decimal(row["money"] or 0).quantize(CENT),
            )
            for row in ProductDailySales.objects.filter(day__gte=window_first)
            .values("product_id", "product_name", "product_sku")
            .annotate(units=Sum("quantity"), n=Sum("orders"), money=Sum("revenue"))
            .order_by()
        ],
        batch_size=500,
    )
    if rebuild_window:
        SalesWindow.objects.update_or_create(pk=1, defaults={"first_day": new_first})
    seconds = time.monotonic() - started
    return SalesRefresh(
        first_day=first,
        last_day=last,
        days=len(day_rows),
        product_rows=len(product_rows),
        seconds=seconds,
        locked_seconds=seconds,
        window_first_day=new_first if rebuild_window else None,
    )


# --- order exports --------------------------------------------------------------------------


def request_order_export(
    *, user: User, since: dt.date | None = None, until: dt.date | None = None
) -> OrderExport:
    """Queue an export of the orders placed between `since` and `until` (both optional)."""
    from storefront.dashboards.tasks import export_orders

    if since and until and since > until:
        raise ValueError("“since” must not be after “until”.")
    export = OrderExport(
        requested_by=user,
        filters={
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
    )
    export.full_clean(exclude=["file"])
    export.save()
    transaction.on_commit(lambda: export_orders.delay(export.pk))
    return export


def produce_order_export(*, export_id: int) -> OrderExport | None:
    """Write the export's CSV file; idempotent (a finished export is left alone, a retried or
    redelivered one rewrites the same file name). None when the export no longer exists."""
    with transaction.atomic():
        export = OrderExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None:
            return None
        storage = export.file.storage
        if (
            export.status == OrderExport.Status.DONE
            and export.file
            and storage.exists(export.file.name)
        ):
            return export
        export.status = OrderExport.Status.RUNNING
        export.error = ""
        export.save(update_fields=["status", "error"])

    temp_path = None
    try:
        form = ExportFilterForm(data=export.filters or {})
        if not form.is_valid():
            raise ValueError(f"Bad export filters: {form.errors.as_text()}")
        rows = order_export_rows(since=form.cleaned_data["since"], until=form.cleaned_data["until"])
        name = export.download_name
        os.makedirs(storage.location, exist_ok=True)
        # A temporary file beside the final one, renamed over it only once complete: a
        # download never sees half a file, and a crash leaves only a stray ".tmp".
        with tempfile.NamedTemporaryFile(
            "w",
            dir=storage.location,
            prefix=f".{name}.",
            suffix=".tmp",
            delete=False,
            encoding="utf-8",
            newline="",
        ) as out:
            temp_path = out.name
            count = -1  # the header is not a row
            for line in order_csv_lines(rows):
                out.write(line)
                count += 1
        os.replace(temp_path, storage.path(name))
        temp_path = None
    except Exception as error:  # recorded on the export for the staff page
        logger.exception("Order export %s failed", export_id)
        if temp_path:
            _remove_quietly(temp_path)
        OrderExport.objects.filter(pk=export_id).update(
            status=OrderExport.Status.FAILED,
            error=str(error)[:2000] or error.__class__.__name__,
            finished_at=timezone.now(),
        )
        export.refresh_from_db()
        return export

    export.file.name = name
    export.row_count = count
    export.status = OrderExport.Status.DONE
    export.finished_at = timezone.now()
    export.save(update_fields=["file", "row_count", "status", "finished_at"])
    return export


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
