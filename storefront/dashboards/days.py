"""What a sales "day" is: a calendar date in settings.TIME_ZONE (never the request's timezone),
so the checkout's increments, the nightly refresh and the dashboard agree on where a day ends."""

from __future__ import annotations

import datetime as dt

from django.db.models.functions import TruncDate
from django.utils import timezone

# The dashboard's sales window: today and the 29 days before.
WINDOW_DAYS = 30


def sales_day(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def sales_today() -> dt.date:
    return sales_day(timezone.now())


def day_start(day: dt.date) -> dt.datetime:
    """The first instant of `day` (aware), for range filters on created_at."""
    return timezone.make_aware(
        dt.datetime.combine(day, dt.time.min), timezone.get_default_timezone()
    )


def truncate_to_sales_day(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=timezone.get_default_timezone())
