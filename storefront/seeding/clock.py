"""Seeded dates: every one is an offset from today's midnight in TIME_ZONE."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import time as dt_time

from django.utils import timezone

# The seeded shop has a year of history: products, shoppers and orders.
HISTORY_DAYS = 365


class Clock:
    """Epoch seconds of local midnights counted back from `today`."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.midnight = self.day_start(0)

    def day_start(self, days_ago: int) -> int:
        day = self.today - timedelta(days=days_ago)
        return int(timezone.make_aware(datetime.combine(day, dt_time.min)).timestamp())
