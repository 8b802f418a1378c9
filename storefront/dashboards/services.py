"""Writes of the dashboards app: the denormalized sales tables and the order exports."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from storefront.accounts.models import User
from storefront.dashboards.days import day_start, sales_day, sales_today, truncate_to_sales_day
from storefront.dashboards.forms import ExportFilterForm
from storefront.dashboards.models import DailySales, OrderExport, ProductDailySales
from storefront.dashboards.order_csv import order_csv_lines
from storefront.orders.models import Order, OrderLine
from storefront.orders.selectors import order_export_rows

logger = logging.getLogger(__name__)

# The nightly task reconciles this many days back (a little more than the dashboard's 30, so a
# late status change near the window's edge is caught too).
DEFAULT_REFRESH_DAYS = 35

# PostgreSQL advisory lock serialising a recomputation against checkouts (see _sales_lock).
SALES_LOCK_KEY = 0x5F_DA17_5A1E
CENT = Decimal("0.01")

_DAILY_TABLE = DailySales._meta.db_table
_PRODUCT_TABLE = ProductDailySales._meta.db_table

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


def _counts(status: str) -> bool:
    return status in Order.REVENUE_STATUSES


def _sales_lock(*, exclusive: bool) -> None:
    """Checkouts take this lock shared, recomputations exclusive (both until commit).

    A recomputation reads the orders and then overwrites the day's rows; without the lock an
    order committing in between would have its increment overwritten by figures that never saw
    it. With it, the recomputation waits for the checkouts in flight and new ones wait for it
    (nightly, 35 days: well under a second). SQLite serialises writers by itself.
    """
    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [SALES_LOCK_KEY])


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
    if connection.vendor not in ("postgresql", "sqlite"):
        _increment_portably(day=day, order=order, lines=lines)
        return
    product_rows = [
        (
            day,
            line.product_id,
            line.product_name,
            line.product_sku,
            line.quantity,
            1,
            line.unit_price * line.quantity,
        )
        for line in lines
    ]
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
        key = {
            "day": day,
            "product_id": line.product_id,
            "product_name": line.product_name,
            "product_sku": line.product_sku,
        }
        ProductDailySales.objects.get_or_create(**key)
        ProductDailySales.objects.filter(**key).update(
            quantity=F("quantity") + line.quantity,
            orders=F("orders") + 1,
            revenue=F("revenue") + line.unit_price * line.quantity,
        )


@dataclass(frozen=True)
class SalesRefresh:
    first_day: dt.date | None  # None: from the first order on
    last_day: dt.date | None  # None: up to the last order
    days: int  # days with revenue in the range
    product_rows: int
    seconds: float


def refresh_daily_sales(*, days: int | None = None) -> SalesRefresh:
    """Recompute the sales tables from the orders: the last `days` days (today included), or
    every day when `days` is None. Days in the range left without revenue lose their rows."""
    if days is not None and days < 1:
        raise ValueError("days must be 1 or more (or None for every day).")
    first = sales_today() - dt.timedelta(days=days - 1) if days else None
    return _recompute(first=first, last=None)


def recompute_sales_days(*, days: Iterable[dt.date]) -> None:
    """Recompute single days (an order there changed status or total outside the checkout)."""
    for day in sorted(set(days)):
        _recompute(first=day, last=day)


@transaction.atomic
def _recompute(*, first: dt.date | None, last: dt.date | None) -> SalesRefresh:
    started = timezone.now()
    _sales_lock(exclusive=True)
    orders = Order.objects.filter(status__in=Order.REVENUE_STATUSES)
    lines = OrderLine.objects.filter(order__status__in=Order.REVENUE_STATUSES)
    daily = DailySales.objects.all()
    per_product = ProductDailySales.objects.all()
    if first:
        orders = orders.filter(created_at__gte=day_start(first))
        lines = lines.filter(order__created_at__gte=day_start(first))
        daily = daily.filter(day__gte=first)
        per_product = per_product.filter(day__gte=first)
    if last:
        end = day_start(last + dt.timedelta(days=1))
        orders = orders.filter(created_at__lt=end)
        lines = lines.filter(order__created_at__lt=end)
        daily = daily.filter(day__lte=last)
        per_product = per_product.filter(day__lte=last)

    # DailySales: at most a row per day, so the aggregate comes back to Python and is upserted
    # (overwriting, not incrementing); the range's days without revenue are deleted.
    day_rows = [
        DailySales(
            day=row["day"],
            orders=row["n"],
            items=row["items"] or 0,
            # SQLite sums decimals as floats (988.800000000001): back to cents.
            revenue=Decimal(row["revenue"] or 0).quantize(CENT),
        )
        for row in orders.annotate(day=truncate_to_sales_day("created_at"))
        .values("day")
        .annotate(n=Count("id"), items=Sum("item_count"), revenue=Sum("total"))
        .order_by()
    ]
    DailySales.objects.bulk_create(
        day_rows,
        update_conflicts=True,
        unique_fields=["day"],
        update_fields=["orders", "items", "revenue"],
        batch_size=500,
    )
    daily.exclude(day__in=[row.day for row in day_rows]).delete()

    # ProductDailySales: up to (products sold) × (days) rows, millions for a year of a big shop,
    # so they never pass through Python: the range is deleted and refilled by one
    # INSERT ... SELECT of the ORM's aggregate, read as a derived table by column name (the
    # ORM decides the order of its SELECT list).
    per_product.delete()
    aggregate = (
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
    columns = ", ".join(
        ("day", "product_id", "product_name", "product_sku", "quantity", "orders", "revenue")
    )
    select_sql, params = aggregate.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_PRODUCT_TABLE} ({columns}) "  # noqa: S608 - no user input
            f"SELECT {columns} FROM ({select_sql}) AS aggregate",
            params,
        )
        product_rows = cursor.rowcount
    return SalesRefresh(
        first_day=first,
        last_day=last,
        days=len(day_rows),
        product_rows=product_rows,
        seconds=(timezone.now() - started).total_seconds(),
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
