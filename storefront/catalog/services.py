"""Writes of the catalog (other than the CSV import, in imports.py).

Stock has several writers: the checkout and order cancellations (deltas under the row lock, in
storefront/orders/services.py), the admin forms, the API and the CSV import. None may undo a
sale made between reading the stock and writing it, so every stock change here happens under
the product's row lock (SELECT ... FOR UPDATE, the lock the checkout takes) and bumps
Product.stock_version:

* a delta (`stock_delta`) is applied to the stock as it is under the lock: it cannot conflict,
  only fail when it would take the stock below zero;
* an absolute value (`stock`) is an edit of a number someone read earlier, so it must say which
  version it was read at (`expected_stock_version`): if the version moved, the write is refused
  with the current stock (StockConflict) instead of overwriting the change it did not see.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import connection, transaction

from storefront.bulk_load import TableLoader
from storefront.catalog.models import Category, Product

UPDATABLE_FIELDS = ("name", "description", "price", "stock", "is_active", "category")


class StockConflict(Exception):
    """A stock write that would undo a change it did not see (or go below zero); nothing was
    written. `stock` and `stock_version` are the product's current ones."""

    def __init__(self, message: str, *, stock: int, stock_version: int) -> None:
        super().__init__(message)
        self.message = message
        self.stock = stock
        self.stock_version = stock_version


class StockVersionRequired(Exception):
    """An absolute stock was given without the version it was read at."""


def stock_changed_message(*, stock: int) -> str:
    return (
        f"Someone changed this product's stock (now {stock}) since you opened the page: "
        "reload and try again."
    )


def lock_stock(*, product_id: int) -> tuple[int, int]:
    """(stock, stock_version) of the product, locked until the transaction ends."""
    return (
        Product.objects.select_for_update()
        .filter(pk=product_id)
        .values_list("stock", "stock_version")
        .get()
    )


def new_stock(
    *,
    current_stock: int,
    current_version: int,
    stock: int | None = None,
    stock_delta: int | None = None,
    expected_stock_version: int | None = None,
) -> int:
    """The stock a write asks for, checked against the locked current stock and version.

    Raises StockVersionRequired, or StockConflict (a stale version, or a delta taking the stock
    below zero).
    """
    if stock is not None and stock_delta is not None:
        raise ValueError("Give either stock or stock_delta, not both.")
    if stock_delta is not None:
        if current_stock + stock_delta < 0:
            raise StockConflict(
                f"Only {current_stock} in stock: cannot take away {-stock_delta}.",
                stock=current_stock,
                stock_version=current_version,
            )
        return current_stock + stock_delta
    if stock is None:
        return current_stock
    if expected_stock_version is None:
        raise StockVersionRequired(
            "Setting stock needs the stock_version it was read at (or send stock_delta)."
        )
    if expected_stock_version != current_version:
        raise StockConflict(
            f"Someone changed this product's stock (now {current_stock}, stock_version "
            f"{current_version}) since you read it at stock_version {expected_stock_version}: "
            "read it again and retry, or send stock_delta.",
            stock=current_stock,
            stock_version=current_version,
        )
    return stock


@transaction.atomic
def update_product(
    *,
    product: Product,
    name: str | None = None,
    description: str | None = None,
    price: Decimal | None = None,
    stock: int | None = None,
    stock_delta: int | None = None,
    expected_stock_version: int | None = None,
    is_active: bool | None = None,
    category: Category | None = None,
) -> Product:
    """Change the given fields (None = leave as is), validated by the model's rules.

    `stock` (absolute, with `expected_stock_version`) or `stock_delta` change the stock under the
    row lock (see the module docstring); a changed stock bumps stock_version. The save fires the
    catalog signal, which invalidates cached catalog pages after commit.
    """
    changes = {
        "name": name,
        "description": description,
        "price": price,
        "is_active": is_active,
        "category": category,
    }
    changed = [field for field, value in changes.items() if value is not None]
    for field in changed:
        setattr(product, field, changes[field])
    if stock is not None or stock_delta is not None:
        current_stock, current_version = lock_stock(product_id=product.pk)
        wanted = new_stock(
            current_stock=current_stock,
            current_version=current_version,
            stock=stock,
            stock_delta=stock_delta,
            expected_stock_version=expected_stock_version,
        )
        product.stock, product.stock_version = current_stock, current_version
        if wanted != current_stock:
            product.stock, product.stock_version = wanted, current_version + 1
            changed += ["stock", "stock_version"]
    if changed:
        product.full_clean(validate_unique=False)
        product.save(update_fields=[*changed, "updated_at"])
    return product


# The columns of bulk-loaded rows, in order (ids included; timestamps as the loader formats them).
CATEGORY_BULK_COLUMNS = ("id", "name", "slug", "parent_id", "description")
PRODUCT_BULK_COLUMNS = (
    "id",
    "name",
    "slug",
    "sku",
    "description",
    "price",
    "stock",
    "category_id",
    "image",
    "is_active",
    "created_at",
    "updated_at",
)


def bulk_load_categories(*, loader: TableLoader, rows: Iterable[tuple]) -> int:
    """Write generated categories (CATEGORY_BULK_COLUMNS, parents first) in the caller's
    transaction, without model validation or signals; the number written."""
    return loader.load(model=Category, columns=CATEGORY_BULK_COLUMNS, rows=rows)


def bulk_load_products(*, loader: TableLoader, rows: Iterable[tuple]) -> int:
    """Write generated products (PRODUCT_BULK_COLUMNS) in the caller's transaction, without
    model validation or signals; the number written."""
    return loader.load(model=Product, columns=PRODUCT_BULK_COLUMNS, rows=rows)


@transaction.atomic
def delete_catalog() -> None:
    """Delete every product and category. On PostgreSQL with TRUNCATE ... RESTART IDENTITY
    CASCADE, so rows of other tables that point at them go too."""
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        tables = ", ".join(quote(m._meta.db_table) for m in (Product, Category))
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        return
    Product.objects.all().delete()
    # Categories protect their children, so remove the tree from the leaves up.
    while Category.objects.exists():
        Category.objects.filter(children__isnull=True).delete()
