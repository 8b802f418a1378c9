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
from storefront.orders.models import CartItem, Order, OrderLine
from storefront.orders.shipping import profile_shipping_address

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
        shipping_address=shipping_address or profile_shipping_address(user=user),
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


@transaction.atomic
def place_order_from_cart(
    *,
    user: User,
    items: list[OrderItem],
    shipping_name: str = "",
    shipping_address: str = "",
) -> Order:
    """The checkout of the cart: place_order, and the customer's saved cart emptied in the same
    transaction, so a placed order's lines never come back at the next login and a refused
    order keeps them (its CheckoutError rolls the emptying back too).

    The saved cart is emptied first: place_order takes the day's sales row lock last, and
    holding it while this delete runs would slow every other checkout.
    """
    CartItem.objects.filter(user=user).delete()
    return place_order(
        user=user,
        items=items,
        shipping_name=shipping_name,
        shipping_address=shipping_address,
    )


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


# The saved cart: the durable copy of a signed-in customer's session cart (see orders/cart.py).


@transaction.atomic
def saved_cart_set_line(*, user: User, product_id: int, quantity: int) -> None:
    """Insert or update one saved-cart line; the caller has checked quantity and stock."""
    _save_cart_items([CartItem(user=user, product_id=product_id, quantity=quantity)])


@transaction.atomic
def saved_cart_remove_line(*, user: User, product_id: int) -> None:
    CartItem.objects.filter(user=user, product_id=product_id).delete()


@dataclass(frozen=True)
class SavedCartMerge:
    # product id -> quantity: the saved lines (oldest first), then the newly added ones.
    items: dict[int, int]
    # What had to change (capped or dropped lines), in words for the customer.
    notes: list[str]


@transaction.atomic
def saved_cart_merge(*, user: User, items: dict[int, int]) -> SavedCartMerge:
    """Add `items` (an anonymous cart, product id -> quantity) to the user's saved cart.

    Quantities of a product in both add up, capped at STOREFRONT_MAX_LINE_QUANTITY and at the
    stock; lines whose product is gone, no longer sold or out of stock are dropped. The saved
    cart is rewritten to the result, which is returned for the session.
    """
    # Lock the user's row: two logins of one customer at once (two devices) then merge one
    # after the other instead of both writing over the same saved lines.
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    saved = dict(
        CartItem.objects.filter(user=user).order_by("id").values_list("product_id", "quantity")
    )
    wanted = dict(saved)
    for product_id, quantity in items.items():
        if quantity > 0:
            wanted[product_id] = wanted.get(product_id, 0) + quantity
    if not wanted:
        return SavedCartMerge(items={}, notes=[])

    products = {
        p.id: p
        for p in Product.objects.filter(id__in=wanted).only("id", "name", "stock", "is_active")
    }
    limit = settings.STOREFRONT_MAX_LINE_QUANTITY
    merged: dict[int, int] = {}
    notes: list[str] = []
    if any(product_id not in products for product_id in wanted):
        notes.append("A product in your cart was removed from the shop.")
    for product_id, quantity in wanted.items():
        product = products.get(product_id)
        if product is None:
            continue
        if not product.is_active:
            notes.append(f"{product.name} is no longer sold and was taken out of your cart.")
        elif product.stock < 1:
            notes.append(f"{product.name} is out of stock and was taken out of your cart.")
        else:
            kept = min(quantity, limit, product.stock)
            if kept < quantity:
                why = (
                    f"only {product.stock} in stock"
                    if product.stock < limit
                    else f"at most {limit} of one product"
                )
                notes.append(f"{product.name}: quantity lowered from {quantity} to {kept} ({why}).")
            merged[product_id] = kept

    dropped = [product_id for product_id in saved if product_id not in merged]
    if dropped:
        CartItem.objects.filter(user=user, product_id__in=dropped).delete()
    _save_cart_items(
        [
            CartItem(user=user, product_id=product_id, quantity=quantity)
            for product_id, quantity in merged.items()
            if saved.get(product_id) != quantity
        ]
    )
    return SavedCartMerge(items=merged, notes=notes)


def _save_cart_items(items: list[CartItem]) -> None:
    """Upsert on (user, product): one statement, whether the lines exist or not."""
    if not items:
        return
    for item in items:
        # No lookups: the caller holds the user and has just read the products.
        item.full_clean(
            exclude=["user", "product"], validate_unique=False, validate_constraints=False
        )
    CartItem.objects.bulk_create(
        items,
        update_conflicts=True,
        unique_fields=["user", "product"],
        update_fields=["quantity", "updated_at"],
    )
