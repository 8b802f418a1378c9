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
    # Statuses staff may cancel from (the goods have not left): cancelling restocks the lines.
    CANCELLABLE_STATUSES = (Status.PLACED, Status.PAID)

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
    # The checkout's idempotency key: the hidden key of the rendered checkout form, or the API's
    # Idempotency-Key header. A second submission with the same key (a double click, a retry)
    # gets this order back instead of placing another; keys are per customer.
    # Empty: placed without a key. (db_default: the seed's COPY names its columns.)
    idempotency_key = models.CharField(
        max_length=100, blank=True, default="", db_default="", editable=False
    )
    # SHA-256 of the API request's canonical body, so a key reused for another body is refused.
    request_fingerprint = models.CharField(
        max_length=64, blank=True, default="", db_default="", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_non_negative"),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="order_user_idempotency_key_uniq",
            ),
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


class CartItem(models.Model):
    """One line of a signed-in customer's saved cart: the durable copy of their session cart.

    The session stays the read path (the header badge and the cart page read it without a
    query); every change a signed-in customer makes is written here too, so the cart outlives
    logout and is merged back into the session at the next login (see orders/cart.py).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="cart_items",
        db_index=False,  # the (user, product) unique constraint's index starts with user
    )
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, related_name="cart_items", db_index=False
    )
    quantity = models.PositiveIntegerField()
    # Tells operators how stale a saved cart is (carts are never expired automatically).
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="cartitem_user_product_uniq"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="cartitem_quantity_positive"),
        ]
        indexes = [
            # Deleting a product deletes its saved-cart lines: find them without a scan.
            models.Index(fields=["product"], name="cartitem_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × product #{self.product_id} for user #{self.user_id}"


class EmailDelivery(models.Model):
    """One email the shop must send once (order confirmation, low-stock alert, password reset)
    and its fate.

    The idempotency key (e.g. "order-confirmation:<order id>") is unique: the Celery task that
    sends the email claims this row first, so a redelivered or duplicated task finds it sent and
    does nothing (see storefront/orders/notifications.py for the one remaining window).
    """

    class Kind(models.TextChoices):
        ORDER_CONFIRMATION = "order_confirmation", "Order confirmation"
        LOW_STOCK = "low_stock", "Low-stock alert"
        PASSWORD_RESET = "password_reset", "Password reset"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        # An attempt started; stays so if its worker died before finishing (redelivery retries).
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        # Nothing to send (no recipients): done, not an error.
        SKIPPED = "skipped", "Skipped"
        # The last attempt failed (SMTP error); the task retries with backoff until max_retries.
        FAILED = "failed", "Failed"

    DONE_STATUSES = (Status.SENT, Status.SKIPPED)

    kind = models.CharField(max_length=32, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=100, unique=True)
    order = models.ForeignKey(
        Order,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email_deliveries",
    )
    recipients = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "email deliveries"
        indexes = [
            # Admin and monitoring: deliveries by status, newest first (stuck or failed ones).
            models.Index(fields=["status", "-created_at"], name="emaildelivery_status_idx"),
        ]

    def __str__(self) -> str:
        return self.idempotency_key
