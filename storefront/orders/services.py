"""Writes of the orders app: placing an order is the one place stock goes down."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from storefront import caching
from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.dashboards.services import record_order as record_sales
from storefront.orders import notifications, tasks
from storefront.orders.models import Order, OrderLine

# Unambiguous characters (no 0/O, 1/I/L) for order numbers read over the phone.
NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class CheckoutError(ValidationError):
    """The order cannot be placed (stock, inactive product, bad quantity); nothing was written."""


@dataclass(frozen=True)
class OrderItem:
    product_id: int
    quantity: int


def new_order_number(rand: secrets.SystemRandom | None = None) -> str:
    r = rand or secrets.SystemRandom()
    chars = "".join(r.choice(NUMBER_ALPHABET) for _ in range(8))
    return f"SF-{chars[:4]}-{chars[4:]}"


@transaction.atomic
def place_order(
    *,
    user: User,
    items: list[OrderItem],
    shipping_name: str = "",
    shipping_address: str = "",
) -> Order:
    """Create an order for `items`, decrementing stock; all or nothing.

    Products are locked with SELECT ... FOR UPDATE in id order (so two checkouts never deadlock)
    and stock is checked under the lock, so the last unit is sold exactly once.
    """
    if not items:
        raise CheckoutError("Your cart is empty.")
    merged: dict[int, int] = {}
    for item in items:
        merged[item.product_id] = merged.get(item.product_id, 0) + item.quantity
    limit = settings.STOREFRONT_MAX_LINE_QUANTITY
    for quantity in merged.values():
        if quantity < 1:
            raise CheckoutError("Quantities must be at least 1.")
        if quantity > limit:
            raise CheckoutError(f"You can order at most {limit} of one product.")

    products = {
        p.id: p
        for p in Product.objects.select_for_update()
        .filter(id__in=merged)
        .only("id", "name", "slug", "sku", "price", "stock", "is_active")
        .order_by("id")
    }
    problems = []
    for product_id, quantity in merged.items():
        product = products.get(product_id)
        if product is None or not product.is_active:
            name = product.name if product else f"Product #{product_id}"
            problems.append(f"{name} is no longer sold.")
        elif product.stock < quantity:
            problems.append(
                f"Only {product.stock} of {product.name} left in stock (you asked for {quantity})."
                if product.stock
                else f"{product.name} is out of stock."
            )
    if problems:
        raise CheckoutError(problems)

    lines = [
        OrderLine(
            product=products[pid],
            product_name=products[pid].name,
            product_sku=products[pid].sku,
            unit_price=products[pid].price,
            quantity=qty,
        )
        for pid, qty in sorted(merged.items())
    ]
    order = Order(
        user=user,
        status=Order.Status.PLACED,
        total=sum((line.unit_price * line.quantity for line in lines), Decimal("0")),
        item_count=sum(merged.values()),
        shipping_name=shipping_name or user.display_name,
        shipping_address=shipping_address or user.shipping_address,
    )
    _save_with_unique_number(order)
    for line in lines:
        line.order = order
    OrderLine.objects.bulk_create(lines)
    for pid, qty in merged.items():
        Product.objects.filter(pk=pid).update(stock=F("stock") - qty)
    _invalidate_stock_after_commit(products, merged)
    _send_order_emails_after_commit(order, products, merged)
    record_sales(order=order, lines=lines)  # last: it locks the day's sales row until commit
    return order


def _invalidate_stock_after_commit(products: dict[int, Product], sold: dict[int, int]) -> None:
    """The bulk stock update skips model signals: invalidate the cached pages it changes.

    Each sold product's page and cached detail; and listings/cards only when a product's stock
    is now within the range they display ("Only N left", "Sold out").
    """
    slugs = [products[pid].slug for pid in sold]
    shows_stock = any(
        products[pid].stock - qty <= settings.STOREFRONT_LOW_STOCK_THRESHOLD
        for pid, qty in sold.items()
    )

    def invalidate() -> None:
        caching.bump_products(slugs)
        if shows_stock:
            caching.bump_stock_display()

    # robust: a cache failure after the commit must not turn a placed order into an error.
    transaction.on_commit(invalidate, robust=True)


def _send_order_emails_after_commit(
    order: Order, products: dict[int, Product], sold: dict[int, int]
) -> None:
    """Enqueue the confirmation email, and a staff alert for the products this order took
    across the low-stock threshold (stock before > threshold >= stock after, decided here under
    the row locks): a product already low is not re-announced on every sale.
    """
    threshold = settings.STOREFRONT_LOW_STOCK_THRESHOLD
    crossed = sorted(
        pid
        for pid, qty in sold.items()
        if products[pid].stock > threshold >= products[pid].stock - qty
    )
    # Outbox row in the checkout's transaction: if the broker is down at commit time, the
    # periodic resend task finds it pending and queues the email again.
    notifications.record_pending_confirmation(order=order)
    # robust: a broker failure after the commit must not turn a placed order into an error.
    transaction.on_commit(lambda: tasks.send_order_confirmation.delay(order.id), robust=True)
    if crossed:
        transaction.on_commit(
            lambda: tasks.send_low_stock_alert.delay(order.id, crossed), robust=True
        )


def _save_with_unique_number(order: Order, attempts: int = 5) -> None:
    for attempt in range(attempts):
        order.number = new_order_number()
        order.full_clean(exclude=["user"], validate_unique=False, validate_constraints=False)
        try:
            # A savepoint, so a number collision does not poison the checkout transaction.
            with transaction.atomic():
                order.save(force_insert=True)
            return
        except IntegrityError:
            if attempt == attempts - 1:
                raise
