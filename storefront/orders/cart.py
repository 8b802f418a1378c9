"""The shopping cart, kept in the session as {product id: quantity}.

Only ids and quantities are stored: prices and names are read fresh from the catalog each
time, so a price change shows in the cart and the order is always priced by the database.

The session is the read path (the header badge reads it without a query). A signed-in
customer's changes are also written to their saved cart (CartItem, through the services), so
the cart survives logout: at login the session's anonymous cart is merged into the saved one
and the result put back into the session (orders/signals.py). Another device's session sees
changes made elsewhere at its next login.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase

from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.catalog.selectors import products_by_ids
from storefront.orders import services

SESSION_KEY = "cart"
# The id of the user whose saved cart the session's cart mirrors. Set at login and by a
# signed-in customer's changes; an anonymous cart has none. It tells a second login of the
# same user in the same session (the admin login, say) not to add the cart to itself again.
SESSION_OWNER_KEY = "cart_user"


class CartError(ValueError):
    """A cart change that cannot be made; the message is shown to the shopper."""


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity

    @property
    def exceeds_stock(self) -> bool:
        return self.quantity > self.product.stock


@dataclass(frozen=True)
class CartContents:
    lines: list[CartLine]

    @property
    def total(self) -> Decimal:
        return sum((line.line_total for line in self.lines), Decimal("0"))

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def has_problems(self) -> bool:
        return any(line.exceeds_stock for line in self.lines)


class Cart:
    def __init__(self, session: SessionBase, *, user: User | AnonymousUser | None = None) -> None:
        self.session = session
        # Only a signed-in customer's changes are written through to a saved cart.
        self.user = user if user is not None and user.is_authenticated else None

    @property
    def items(self) -> dict[int, int]:
        raw = self.session.get(SESSION_KEY, {})
        return {int(pid): int(qty) for pid, qty in raw.items()}

    def _save(self, items: dict[int, int]) -> None:
        self.session[SESSION_KEY] = {str(pid): qty for pid, qty in items.items() if qty > 0}
        if self.user is not None:
            self.session[SESSION_OWNER_KEY] = self.user.pk

    @property
    def item_count(self) -> int:
        return sum(self.items.values())

    def quantity_of(self, product_id: int) -> int:
        """How many of the product are in the cart; 0 when it is not."""
        return self.items.get(product_id, 0)

    def add(self, *, product: Product, quantity: int) -> None:
        items = self.items
        self.set(product=product, quantity=items.get(product.id, 0) + quantity)

    def set(self, *, product: Product, quantity: int) -> None:
        limit = settings.STOREFRONT_MAX_LINE_QUANTITY
        if quantity < 1:
            raise CartError("Quantity must be at least 1.")
        if quantity > limit:
            raise CartError(f"You can order at most {limit} of one product.")
        if not product.is_active:
            raise CartError(f"{product.name} is no longer sold.")
        if quantity > product.stock:
            raise CartError(
                f"Only {product.stock} of {product.name} in stock."
                if product.stock
                else f"{product.name} is out of stock."
            )
        # The saved copy first: if writing it fails, the session is left as it was.
        if self.user is not None:
            services.saved_cart_set_line(user=self.user, product_id=product.id, quantity=quantity)
        items = self.items
        items[product.id] = quantity
        self._save(items)

    def remove(self, *, product_id: int) -> None:
        if self.user is not None:
            services.saved_cart_remove_line(user=self.user, product_id=product_id)
        items = self.items
        items.pop(product_id, None)
        self._save(items)

    def clear(self) -> None:
        """Empty the session's cart after a checkout; the checkout service has emptied the
        saved cart in the order's transaction (services.place_order_from_cart)."""
        self.session.pop(SESSION_KEY, None)

    def merge_saved(self) -> list[str]:
        """At login: add the session's anonymous cart to the user's saved cart and put the
        merged cart into the session. Returns what had to change, for the customer."""
        if self.user is None:
            raise ValueError("Only a signed-in customer has a saved cart.")
        already_saved = self.session.get(SESSION_OWNER_KEY) == self.user.pk
        merged = services.saved_cart_merge(
            user=self.user, items={} if already_saved else self.items
        )
        self._save(merged.items)
        return merged.notes

    def contents(self) -> CartContents:
        """The cart's lines with their products, in one query; vanished products are dropped."""
        items = self.items
        if not items:
            return CartContents(lines=[])
        products = products_by_ids(ids=list(items))
        lines = [
            CartLine(product=products[pid], quantity=qty)
            for pid, qty in items.items()
            if pid in products and products[pid].is_active
        ]
        return CartContents(lines=lines)
