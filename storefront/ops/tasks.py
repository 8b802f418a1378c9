"""Housekeeping tasks run by celery beat."""

from __future__ import annotations

from celery import shared_task
from django.core.management import call_command


@shared_task(name="storefront.ops.tasks.clear_expired_sessions")
def clear_expired_sessions() -> None:
    """Delete expired database sessions (cached_db and db stores); idempotent."""
    call_command("clearsessions")
