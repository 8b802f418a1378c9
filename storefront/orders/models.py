from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"

    # Statuses whose totals count as revenue and spending.
    REVENUE_STATUSES = (Status.PLACED, Status.PAID, Status.SHIPPED, Status.DELIVERED)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    # Human-friendly reference shown to customers, e.g. "SF-7KQ2-M9XD".
    number = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLACED)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    item_count = models.PositiveIntegerField(default=0)
    shipping_name = models.CharField(max_length=150, blank=True)
    shipping_address = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_non_negative"),
        ]
        indexes = [
            # Order history and customer dashboard: one user's orders, newest first.
            models.Index(fields=["user", "-created_at"], name="order_user_newest_idx"),
            # Staff dashboard: revenue per day and recent orders.
            models.Index(fields=["created_at"], name="order_created_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("orders:detail", kwargs={"number": self.number})


class OrderLine(models.Model):
    """One product in an order, with a snapshot of what it was when bought.

    The product link is kept for reports but may become NULL when the product is deleted;
    name, SKU and unit price are copied so order history never changes after the fact.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(
        "catalog.Product",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="order_lines",
        db_index=False,
    )
    product_name = models.CharField(max_length=200)
    product_sku = models.CharField("SKU", max_length=40)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orderline_quantity_positive"),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="orderline_unit_price_non_negative"
            ),
        ]
        indexes = [
            # Top products and "who bought this product".
            models.Index(fields=["product"], name="orderline_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_name}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity
