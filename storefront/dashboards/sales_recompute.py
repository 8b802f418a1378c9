"""Recomputations of the sales tables: a range of days reconciled with the orders (for the
nightly refresh_daily_sales and for recompute_sales_days after an order's status changes, both in
storefront/dashboards/sales.py beside the checkout's own increments).

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

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, QuerySet, Sum

from storefront.catalog.models import Product
from storefront.dashboards.days import WINDOW_DAYS, day_start, sales_today, truncate_to_sales_day
from storefront.dashboards.models import DailySales, ProductDailySales, ProductSales30d, SalesWindow
from storefront.dashboards.sales_locks import recompute_lock, sales_lock
from storefront.dashboards.selectors import sales_window_first_day
from storefront.orders.models import Order, OrderLine

CENT = Decimal("0.01")

_DAILY_TABLE = DailySales._meta.db_table
_PRODUCT_TABLE = ProductDailySales._meta.db_table
_RECENT_TABLE = ProductSales30d._meta.db_table
_WINDOW_TABLE = SalesWindow._meta.db_table
_PRODUCTS = Product._meta.db_table


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


def recompute_range(*, first: dt.date | None, last: dt.date | None) -> SalesRefresh:
    """Reconcile the sales tables with the orders from `first` to `last` (None: unbounded)."""
    if connection.vendor != "postgresql":
        return _recompute_in_place(first=first, last=last)
    return _recompute_by_difference(first=first, last=last)


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


def _recompute_by_difference(*, first: dt.date | None, last: dt.date | None) -> SalesRefresh:
    """PostgreSQL: the difference tables, then the apply step (see the module docstring)."""
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
        recompute_lock()
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
        sales_lock(exclusive=True)
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
    window_first = new_first if rebuild_window else sales_window_first_day()
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
