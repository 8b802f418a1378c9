"""Minute samples of the app's own metrics, for the operations page (storefront/ops/sampling.py).

One row a minute (beat): `figures` holds what the page draws for that minute (rates,
percentiles, gauges), `counters` the cumulative counter and bucket values the next minute's
deltas are taken from. The page reads `figures` only; rows older than a day are pruned.
"""

from __future__ import annotations

from django.db import models


class OpsSample(models.Model):
    taken_at = models.DateTimeField(unique=True)
    # Seconds since the previous sample (0 for the first one or after a gap).
    interval = models.FloatField(default=0)
    figures = models.JSONField(default=dict)
    counters = models.JSONField(default=dict)

    class Meta:
        ordering = ["taken_at"]
        default_permissions = ()
        permissions = [("view_operations", "Can view the operations page")]

    def __str__(self) -> str:
        return f"ops sample {self.taken_at:%Y-%m-%d %H:%M}"
