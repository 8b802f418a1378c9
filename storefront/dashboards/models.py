"""Denormalized sales figures for the staff dashboard, and order exports produced by a task.

DailySales / ProductDailySales hold what the dashboard used to aggregate from the orders table
on every request. They are incremented inside the checkout transaction (sales.record_order),
recomputed for one day when an order's status crosses the revenue line, and reconciled with the
orders by the nightly task (sales.refresh_daily_sales). A "day" is a calendar date in
settings.TIME_ZONE; only orders in Order.REVENUE_STATUSES count, as everywhere else.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from storefront.storage import PrivateStorage


class DailySales(models.Model):
    day = models.DateField(primary_key=True)
    orders = models.PositiveIntegerField(default=0)
    items = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["day"]
        verbose_name_plural = "daily sales"

    def __str__(self) -> str:
        return f"{self.day}: {self.orders} orders, {self.revenue}"


class ProductSalesFigures(models.Model):
    """What both product sales tables hold per product snapshot (name and SKU as the order
    lines carry them): units, orders and revenue."""

    product_name = models.CharField(max_length=200)
    product_sku = models.CharField("SKU", max_length=40)
    quantity = models.PositiveIntegerField(default=0)
    orders = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        abstract = True


class ProductDailySales(ProductSalesFigures):
    """Units, orders and revenue of one product (as its order lines named it) on one day.

    Keyed by the same snapshot the order lines carry (product, name, SKU), so a renamed product
    shows under each name and a deleted one (product NULL) keeps counting by its snapshot, exactly
    as an aggregation of the order lines would group them.
    """

    day = models.DateField()
    product = models.ForeignKey(
        "catalog.Product",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="daily_sales",
        db_index=False,
    )

    class Meta:
        ordering = ["day", "id"]
        verbose_name_plural = "product daily sales"
        constraints = [
            # The checkout's upsert target. It leads with day, so it also serves the dashboard's
            # "last 30 days" range scan and the refresh's per-range delete.
            models.UniqueConstraint(
                fields=["day", "product", "product_name", "product_sku"],
                name="productdailysales_day_product_uniq",
            ),
        ]
        indexes = [
            # Deleting a product sets its rows' product to NULL: without this, a full scan.
            models.Index(fields=["product"], name="productdailysales_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.quantity} × {self.product_name}"


class ProductSales30d(ProductSalesFigures):
    """Units, orders and revenue per product (by snapshot, as ProductDailySales) over the
    dashboard's rolling window: the days from SalesWindow.first_day on.

    The top-products table reads its first rows by the (-quantity, product_name) index instead of
    grouping a month of ProductDailySales rows on each request. The checkout adds to it (inside
    its transaction, like the daily tables); the nightly refresh rebuilds it for the new window,
    so between midnight and that refresh the window holds 31 days (see sales_recompute).
    """

    product = models.ForeignKey(
        "catalog.Product",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recent_sales",
        db_index=False,
    )

    class Meta:
        verbose_name = "product sales (rolling 30 days)"
        verbose_name_plural = "product sales (rolling 30 days)"
        constraints = [
            # The checkout's upsert target.
            models.UniqueConstraint(
                fields=["product", "product_name", "product_sku"],
                name="productsales30d_product_uniq",
            ),
        ]
        indexes = [
            # The dashboard's "top 10 by units": the first rows of this index, no sort.
            models.Index(fields=["-quantity", "product_name"], name="productsales30d_top_idx"),
            # Deleting a product sets its rows' product to NULL: without this, a full scan.
            models.Index(fields=["product"], name="productsales30d_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_name} (30 days)"


class SalesWindow(models.Model):
    """One row (id 1): the first day ProductSales30d counts, moved by each nightly refresh.

    Absent (new database): the window starts 29 days before today."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    first_day = models.DateField()

    def __str__(self) -> str:
        return f"sales window from {self.first_day}"


_private_export_storage = PrivateStorage("exports")


def private_export_storage() -> PrivateStorage:
    # A callable, so migrations record this function rather than a machine-specific path.
    return _private_export_storage


class OrderExport(models.Model):
    """One CSV export of the orders requested by a staff user, written by a Celery task."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="order_exports",
    )
    # The ExportFilterForm fields as ISO dates or null: {"since": "2026-01-01", "until": null}.
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(storage=private_export_storage, max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The exports page: the most recent exports first.
            models.Index(fields=["-created_at"], name="orderexport_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"Order export #{self.pk} ({self.status})"

    @property
    def download_name(self) -> str:
        return f"orders-export-{self.pk}.csv"
