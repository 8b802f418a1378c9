"""Writes of the orders app: placing an order is the one place stock goes down, cancelling
one the place it comes back.

Both change stock by delta under the product rows' lock (SELECT ... FOR UPDATE, in id order) and
bump Product.stock_version, so writers that set an absolute stock (admin, API) notice the sale
or the restock instead of undoing it (see storefront/catalog/services.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum

from storefront import caching
from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.orders import events, notifications, tasks
from storefront.orders.models import CartItem, Order, OrderLine
from storefront.orders.shipping import profile_shipping_address

# Unambiguous characters (no 0/O, 1/I/L) for order numbers read over the phone.
NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


# Class of the PostgreSQL advisory locks (two-int form) that serialise the checkouts of one
# customer's idempotency key; the catalog import uses 0x5F1A.
_IDEMPOTENCY_LOCK_CLASS = 0x5F0C


class CheckoutError(ValidationError):
    """The order cannot be placed (stock, inactive product, bad quantity); nothing was written."""


class AlreadyPlaced(Exception):
    """The idempotency key was already used by one of the customer's orders: nothing was
    written. `same_request` tells whether the earlier request had the same fingerprint."""

    def __init__(self, order: Order, *, same_request: bool) -> None:
        super().__init__(f"Order {order.number} was already placed with this key.")
        self.order = order
        self.same_request = same_request


@dataclass(frozen=True)
class OrderItem:
    product_id: int
    quantity: int


def new_order_number(rand: secrets.SystemRandom | None = None) -> str:
    r = rand or secrets.SystemRandom()
    chars = "".join(r.choice(NUMBER_ALPHABET) for _ in range(8))
    return f"SF-{chars[:4]}-{chars[4:]}"


def _claim_idempotency_key(*, user: User, key: str, fingerprint: str) -> None:
    """Raise AlreadyPlaced if the customer already placed an order with `key`.

    On PostgreSQL a transaction-level advisory lock on (customer, key) is taken first, so two
    submissions of one key (a double click, a retry while the first is still running) run one
    after the other: the second finds the first's committed order here, before it locks any
    product, and never sees "out of stock" for units its own first submission took. The unique
    constraint on (user, idempotency_key) backs this up on other databases.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                [_IDEMPOTENCY_LOCK_CLASS, f"{user.pk}:{key}"],
            )
    existing = Order.objects.filter(user=user, idempotency_key=key).first()
    if existing is not None:
        raise AlreadyPlaced(existing, same_request=existing.request_fingerprint == fingerprint)


@transaction.atomic
def place_order(
    *,
    user: User,
    items: list[OrderItem],
    shipping_name: str = "",
    shipping_address: str = "",
    idempotency_key: str = "",
    request_fingerprint: str = "",
) -> Order:
    """Create an order for `items`, decrementing stock; all or nothing.

    Products are locked with SELECT ... FOR UPDATE in id order (so two checkouts never deadlock)
    and stock is checked under the lock, so the last unit is sold exactly once.

    With an `idempotency_key`, a customer's second call with the same key places nothing and
    raises AlreadyPlaced with the first order (compare `request_fingerprint`s to tell a retry
    from a reused key).
    """
    if idempotency_key:
        _claim_idempotency_key(user=user, key=idempotency_key, fingerprint=request_fingerprint)
    return _place_order(
        user=user,
        items=items,
        shipping_name=shipping_name,
        shipping_address=shipping_address,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
    )


def _place_order(
    *,
    user: User,
    items: list[OrderItem],
    shipping_name: str,
    shipping_address: str,
    idempotency_key: str,
    request_fingerprint: str,
) -> Order:
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
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
    )
    _save_with_unique_number(order)
    for line in lines:
        line.order = order
    OrderLine.objects.bulk_create(lines)
    for pid, qty in merged.items():
        Product.objects.filter(pk=pid).update(
            stock=F("stock") - qty, stock_version=F("stock_version") + 1
        )
    _invalidate_stock_after_commit(products, merged)
    _send_order_emails_after_commit(order, products, merged)
    # Last: a receiver (the dashboards' sales tables) locks the day's sales row until commit.
    events.order_placed.send(sender=Order, order=order, lines=lines)
    return order


@transaction.atomic
def place_order_from_cart(
    *,
    user: User,
    items: list[OrderItem],
    shipping_name: str = "",
    shipping_address: str = "",
    idempotency_key: str = "",
) -> Order:
    """The checkout of the cart: place_order, and the customer's saved cart emptied in the same
    transaction, so a placed order's lines never come back at the next login and a refused
    order keeps them (its CheckoutError rolls the emptying back too).

    The idempotency key is claimed first (a resubmitted form leaves the cart alone and raises
    AlreadyPlaced); the saved cart is emptied next: place_order takes the day's sales row lock
    last, and holding it while this delete runs would slow every other checkout.
    """
    if idempotency_key:
        _claim_idempotency_key(user=user, key=idempotency_key, fingerprint="")
    CartItem.objects.filter(user=user).delete()
    return _place_order(
        user=user,
        items=items,
        shipping_name=shipping_name,
        shipping_address=shipping_address,
        idempotency_key=idempotency_key,
        request_fingerprint="",
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
            if order.idempotency_key:
                # The same key committed meanwhile (databases without the advisory lock).
                existing = Order.objects.filter(
                    user_id=order.user_id, idempotency_key=order.idempotency_key
                ).first()
                if existing is not None:
                    raise AlreadyPlaced(
                        existing,
                        same_request=existing.request_fingerprint == order.request_fingerprint,
                    ) from None
            if attempt == attempts - 1:
                raise


# Cancelling orders (staff): the lines go back to stock, the sales tables forget the order.


@dataclass
class CancelResult:
    cancelled: list[Order] = field(default_factory=list)
    # Already cancelled: left alone (cancelling twice is a no-op).
    already_cancelled: list[Order] = field(default_factory=list)
    # Shipped or delivered: the goods have left, so there is nothing to put back in stock.
    refused: list[Order] = field(default_factory=list)


@transaction.atomic
def cancel_orders(*, order_ids: Iterable[int]) -> CancelResult:
    """Cancel the placed or paid orders among `order_ids`, returning their lines to stock.

    The orders are locked first (id order), so cancelling one order twice at once restocks it
    once: the second sees it cancelled. The products are then locked in id order, like the
    checkout's, and restocked by delta (stock + quantity: a sale or an edit made since the
    order is kept), bumping stock_version. orders_cancelled is sent (the sales tables then
    recompute the orders' days after the commit). Lines whose product was deleted restock
    nothing.
    """
    result = CancelResult()
    orders = list(Order.objects.select_for_update().filter(pk__in=list(order_ids)).order_by("pk"))
    for order in orders:
        if order.status == Order.Status.CANCELLED:
            result.already_cancelled.append(order)
        elif order.status in Order.CANCELLABLE_STATUSES:
            result.cancelled.append(order)
        else:
            result.refused.append(order)
    if not result.cancelled:
        return result

    ids = [order.pk for order in result.cancelled]
    returned = dict(
        OrderLine.objects.filter(order_id__in=ids, product__isnull=False)
        .values("product_id")
        .annotate(units=Sum("quantity"))
        .order_by()
        .values_list("product_id", "units")
    )
    products = {
        p.id: p
        for p in Product.objects.select_for_update()
        .filter(id__in=returned)
        .only("id", "slug", "stock")
        .order_by("id")
    }
    for pid in sorted(products):
        Product.objects.filter(pk=pid).update(
            stock=F("stock") + returned[pid], stock_version=F("stock_version") + 1
        )
    Order.objects.filter(pk__in=ids).update(status=Order.Status.CANCELLED)
    for order in result.cancelled:
        order.status = Order.Status.CANCELLED
    _invalidate_restock_after_commit(products)
    # QuerySet.update() sends no model signals: the listeners (sales tables) are told here.
    events.orders_cancelled.send(sender=Order, orders=result.cancelled)
    return result


def _invalidate_restock_after_commit(products: dict[int, Product]) -> None:
    """The restocked products' pages; listings too when one was showing "Sold out" or
    "Only N left" (its stock before the restock was in that range)."""
    if not products:
        return
    slugs = [p.slug for p in products.values()]
    shows_stock = any(p.stock <= settings.STOREFRONT_LOW_STOCK_THRESHOLD for p in products.values())

    def invalidate() -> None:
        caching.bump_products(slugs)
        if shows_stock:
            caching.bump_stock_display()

    transaction.on_commit(invalidate, robust=True)


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
