"""Housekeeping tasks run by celery beat."""

from __future__ import annotations

from celery import shared_task
from django.core.management import call_command


@shared_task(name="storefront.ops.tasks.clear_expired_sessions")
def clear_expired_sessions() -> None:
    """Delete expired database sessions (cached_db and db stores); idempotent."""
    call_command("clearsessions")


@shared_task(name="storefront.ops.tasks.sample_metrics", ignore_result=True)
def sample_metrics() -> int:
    """Store this minute's metrics sample for the operations page and prune old ones
    (storefront/ops/sampling.py); run by beat every minute. Returns the sample's id."""
    from storefront.ops.sampling import take_sample

    return take_sample().pk


@shared_task(name="storefront.ops.tasks.prune_silk", ignore_result=True)
def prune_silk() -> int:
    """Delete django-silk's recorded requests older than STOREFRONT_SILK_MAX_AGE_HOURS; beat runs
    it hourly when STOREFRONT_SILK=1. Idempotent. Returns how many requests were deleted."""
    from storefront.ops.profiling_silk import prune_silk_requests

    return prune_silk_requests()
