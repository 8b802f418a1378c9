"""Celery tasks of the catalog app: thin wrappers over services, idempotent."""

from __future__ import annotations

from celery import shared_task

from storefront.catalog import imports


@shared_task(name="storefront.catalog.tasks.import_products")
def import_products(import_id: int) -> str | None:
    """Import a ProductImport's CSV. A finished import is left as it is; a redelivered running
    one starts over, which the SKU upserts make harmless."""
    record = imports.run_product_import(import_id=import_id)
    return record.status if record else None
