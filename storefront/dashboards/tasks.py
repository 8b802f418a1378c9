"""Celery tasks of the dashboards app: thin wrappers over its writes, idempotent."""

from __future__ import annotations

from celery import shared_task

from storefront.dashboards import exports, sales


@shared_task(name="storefront.dashboards.tasks.refresh_daily_sales")
def refresh_daily_sales(days: int | None = sales.DEFAULT_REFRESH_DAYS) -> dict:
    """Reconcile the sales tables with the orders (nightly, by celery beat); None: every day."""
    result = sales.refresh_daily_sales(days=days)
    return {
        "days": result.days,
        "product_rows": result.product_rows,
        "seconds": result.seconds,
        "locked_seconds": result.locked_seconds,
    }


@shared_task(name="storefront.dashboards.tasks.export_orders")
def export_orders(export_id: int) -> str | None:
    """Write an OrderExport's CSV file; a finished export is left as it is."""
    export = exports.produce_order_export(export_id=export_id)
    return export.status if export else None
