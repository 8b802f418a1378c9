"""Writes of the catalog (other than the CSV import, in imports.py)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from storefront.catalog.models import Category, Product

UPDATABLE_FIELDS = ("name", "description", "price", "stock", "is_active", "category")


@transaction.atomic
def update_product(
    *,
    product: Product,
    name: str | None = None,
    description: str | None = None,
    price: Decimal | None = None,
    stock: int | None = None,
    is_active: bool | None = None,
    category: Category | None = None,
) -> Product:
    """Change the given fields (None = leave as is), validated by the model's rules.

    The save fires the catalog signal, which invalidates cached catalog pages after commit.
    """
    changes = {
        "name": name,
        "description": description,
        "price": price,
        "stock": stock,
        "is_active": is_active,
        "category": category,
    }
    changed = [field for field, value in changes.items() if value is not None]
    for field in changed:
        setattr(product, field, changes[field])
    if changed:
        product.full_clean(validate_unique=False)
        product.save(update_fields=[*changed, "updated_at"])
    return product
