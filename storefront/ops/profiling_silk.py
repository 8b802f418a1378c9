"""django-silk's stored data, kept bounded (STOREFRONT_SILK=1 only; docs/profiling.md)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone


@transaction.atomic
def prune_silk_requests(*, max_age: timedelta | None = None) -> int:
    """Delete recorded requests older than `max_age` (default STOREFRONT_SILK_MAX_AGE_HOURS) with
    their queries and profiles; returns how many requests went. Nothing to do without silk."""
    if not settings.STOREFRONT_SILK_ON:
        return 0
    from silk.models import Request

    if max_age is None:
        max_age = timedelta(hours=settings.STOREFRONT_SILK_MAX_AGE_HOURS)
    # Its SQL queries and profiles go with it (CASCADE in silk's models).
    _, deleted = Request.objects.filter(start_time__lt=timezone.now() - max_age).delete()
    return deleted.get("silk.Request", 0)
