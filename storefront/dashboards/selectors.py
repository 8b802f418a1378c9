"""Reads for the customer and staff dashboards: each is one query, whatever the data size.

The staff figures (revenue, orders, top products) come from the denormalized sales tables
(models.DailySales, models.ProductSales30d), so no request aggregates the orders table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count, DecimalField, F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.dashboards.days import WINDOW_DAYS, sales_today
from storefront.dashboards.models import (
    DailySales,
    OrderExport,
    ProductDailySales,
    ProductSales30d,
    SalesWindow,
)
from storefront.orders.models import Order
from storefront.orders.selectors import ORDER_LIST_FIELDS

ZERO = Value(Decimal("0"), output_field=DecimalField(max_digits=14, decimal_places=2))
CENT = Decimal("0.01")


def money(value: object) -> Decimal:
    """Sums come back from SQLite as float-derived Decimals (988.800000000000): round to cents."""
    return Decimal(value or 0).quantize(CENT)


@dataclass(frozen=True)
class CustomerTotals:
    order_count: int
    total_spent: Decimal
    average_order: Decimal


@dataclass(frozen=True)
class DayRevenue:
    day: dt.date
    revenue: Decimal
    orders: int


def _revenue_orders() -> QuerySet[Order]:
    return Order.objects.filter(status__in=Order.REVENUE_STATUSES)


def customer_totals(*, user: User) -> CustomerTotals:
    agg = (
        _revenue_orders()
        .filter(user=user)
        .aggregate(
            order_count=Count("id"),
            total_spent=Coalesce(Sum("total"), ZERO),
            average_order=Coalesce(Avg("total"), ZERO),
        )
    )
    return CustomerTotals(
        order_count=agg["order_count"],
        total_spent=money(agg["total_spent"]),
        average_order=money(agg["average_order"]),
    )


def customer_recent_orders(*, user: User, limit: int = 5) -> list[Order]:
    return list(
        Order.objects.filter(user=user)
        .only(*ORDER_LIST_FIELDS)
        .order_by("-created_at", "-id")[:limit]
    )


def _month_starts(today: dt.date, months: int) -> list[dt.date]:
    year, month = today.year, today.month
    starts = []
    for _ in range(months):
        starts.append(dt.date(year, month, 1))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return starts[::-1]


def customer_spending_by_month(*, user: User, months: int = 12) -> list[tuple[dt.date, Decimal]]:
    """Spending per calendar month for the last `months` months, zero-filled, oldest first."""
    today = timezone.localdate()
    starts = _month_starts(today, months)
    since = timezone.make_aware(dt.datetime.combine(starts[0], dt.time.min))
    rows = (
        _revenue_orders()
        .filter(user=user, created_at__gte=since)
        .annotate(month=TruncMonth("created_at"))
        .values("month")
        .annotate(spent=Sum("total"))
        .order_by("month")
    )
    by_month = {_as_date(r["month"]).replace(day=1): money(r["spent"]) for r in rows}
    return [(m, by_month.get(m, money(0))) for m in starts]


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def revenue_per_day(*, days: int = 30) -> list[DayRevenue]:
    """Revenue and order count per day for the last `days` days (today included), zero-filled.

    From the DailySales table (kept current by the checkout), never the orders table.
    """
    today = sales_today()
    first = today - dt.timedelta(days=days - 1)
    by_day = {
        day: (revenue, orders)
        for day, revenue, orders in DailySales.objects.filter(
            day__gte=first, day__lte=today
        ).values_list("day", "revenue", "orders")
    }
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        revenue, orders = by_day.get(day, (0, 0))
        out.append(DayRevenue(day=day, revenue=money(revenue), orders=orders))
    return out


def sales_window_first_day() -> dt.date:
    """The first day ProductSales30d counts (before any refresh: 30 days back from today)."""
    stored = SalesWindow.objects.filter(pk=1).values_list("first_day", flat=True).first()
    return stored or sales_today() - dt.timedelta(days=WINDOW_DAYS - 1)


def top_products(*, days: int = 30, limit: int = 10) -> list[dict]:
    """Best sellers by units over the last `days` days, today included (by snapshot, so deleted
    products count), never from the order lines.

    30 days: the first rows of ProductSales30d by its units index (between midnight and the
    nightly refresh its window holds 31 days: see sales_recompute). Other windows group
    ProductDailySales rows.
    """
    if days == WINDOW_DAYS:
        return list(
            ProductSales30d.objects.values(
                "product_id",
                "product_name",
                "product_sku",
                "product__slug",
                "orders",
                units=F("quantity"),
            ).order_by("-quantity", "product_name")[:limit]
        )
    first = sales_today() - dt.timedelta(days=days - 1)
    # Group first, then look up the slugs of the rows kept: joining the products before
    # grouping made the planner scan the whole product table (tests/test_explain.py).
    rows = list(
        ProductDailySales.objects.filter(day__gte=first)
        .values("product_id", "product_name", "product_sku")
        .annotate(units=Sum("quantity"), orders=Sum("orders"))
        .order_by("-units", "product_name")[:limit]
    )
    ids = [row["product_id"] for row in rows if row["product_id"] is not None]
    slugs = dict(Product.objects.filter(id__in=ids).values_list("id", "slug")) if ids else {}
    for row in rows:
        row["product__slug"] = slugs.get(row["product_id"])
    return rows


def low_stock_products(*, limit: int = 10) -> list[Product]:
    return list(
        Product.objects.active()
        .filter(stock__lte=settings.STOREFRONT_LOW_STOCK_THRESHOLD)
        .only("id", "name", "slug", "sku", "stock")
        .order_by("stock", "id")[:limit]
    )


def recent_orders(*, limit: int = 10) -> list[Order]:
    return list(
        Order.objects.select_related("user")
        .only(*ORDER_LIST_FIELDS, "user__id", "user__username")
        .order_by("-created_at", "-id")[:limit]
    )


def recent_order_exports(*, limit: int = 20) -> list[OrderExport]:
    return list(
        OrderExport.objects.select_related("requested_by")
        .only(
            "id",
            "filters",
            "status",
            "row_count",
            "file",
            "error",
            "created_at",
            "finished_at",
            "requested_by__id",
            "requested_by__username",
        )
        .order_by("-created_at", "-id")[:limit]
    )


def order_export(*, export_id: int) -> OrderExport:
    """Raises OrderExport.DoesNotExist."""
    return OrderExport.objects.get(pk=export_id)


def running_order_exports_count() -> int:
    """Order exports queued or running, for /metrics."""
    active = [OrderExport.Status.QUEUED, OrderExport.Status.RUNNING]
    return OrderExport.objects.filter(status__in=active).count()
