"""The shopping cart, kept in the session as {product id: quantity}.

Only ids and quantities are stored: prices and names are read fresh from the catalog each
time, so a price change shows in the cart and the order is always priced by the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from storefront.catalog.models import Product
from storefront.catalog.selectors import products_by_ids

SESSION_KEY = "cart"


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
    def __init__(self, session: SessionBase) -> None:
        self.session = session

    @property
    def items(self) -> dict[int, int]:
        raw = self.session.get(SESSION_KEY, {})
        return {int(pid): int(qty) for pid, qty in raw.items()}

    def _save(self, items: dict[int, int]) -> None:
        self.session[SESSION_KEY] = {str(pid): qty for pid, qty in items.items() if qty > 0}

    @property
    def item_count(self) -> int:
        return sum(self.items.values())

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
        items = self.items
        items[product.id] = quantity
        self._save(items)

    def remove(self, *, product_id: int) -> None:
        items = self.items
        items.pop(product_id, None)
        self._save(items)

    def clear(self) -> None:
        self.session.pop(SESSION_KEY, None)

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
