"""Catalog cache invalidation on every write path: services, admin, API, imports, shell.

Receivers run for model saves and deletes; bulk writes that skip signals (the checkout's stock
update, the CSV import) invalidate explicitly. Invalidation happens after the transaction
commits: bumping earlier would let a concurrent request re-cache the old rows.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from storefront import caching
from storefront.catalog.models import Category, Product


@receiver([post_save, post_delete], sender=Product, dispatch_uid="catalog-product-cache")
@receiver([post_save, post_delete], sender=Category, dispatch_uid="catalog-category-cache")
def catalog_changed(sender: type, instance: Product | Category, **kwargs: Any) -> None:
    # A product's name, price or category shows on listings, related products and category
    # pages, and a renamed category on every product page under it: the whole namespace goes.
    transaction.on_commit(lambda: caching.bump_namespace("catalog"), robust=True)
