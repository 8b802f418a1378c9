"""Reads for the operations page: the stored minute samples only (storefront/ops/sampling.py).

One query per call whatever the window: the rows of the window, `figures` only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.utils import timezone

from storefront.ops.models import OpsSample
from storefront.ops.sampling import QUANTILES, histogram_quantile

WINDOWS: dict[str, dt.timedelta] = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
SLOWEST_ENDPOINTS = 10


class UnknownWindow(ValueError):
    pass


def window_length(window: str) -> dt.timedelta:
    try:
        return WINDOWS[window]
    except KeyError:
        raise UnknownWindow(
            f"Unknown window “{window}”: use one of {', '.join(WINDOWS)}."
        ) from None


def _samples(window: str, now: dt.datetime | None) -> list[tuple[dt.datetime, dict]]:
    since = (now or timezone.now()) - window_length(window)
    return list(
        OpsSample.objects.filter(taken_at__gt=since)
        .order_by("taken_at")
        .values_list("taken_at", "figures")
    )


def _slowest(rows: list[tuple[dt.datetime, dict]], limit: int) -> list[dict[str, Any]]:
    """Endpoints by p95 latency over the window, from their summed minute bucket deltas."""
    buckets: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, float] = defaultdict(float)
    sums: dict[str, float] = defaultdict(float)
    for _, figures in rows:
        for view, info in figures.get("endpoints", {}).items():
            counts[view] += info["count"]
            sums[view] += info["sum"]
            for le, n in info["buckets"].items():
                buckets[view][le] += n
    endpoints = []
    for view, count in counts.items():
        entry: dict[str, Any] = {
            "view": view,
            "requests": round(count),
            "mean_ms": round(sums[view] / count * 1000, 3) if count else None,
        }
        for q in QUANTILES:
            value = histogram_quantile(q, buckets[view])
            entry[f"p{round(q * 100)}_ms"] = None if value is None else round(value * 1000, 3)
        endpoints.append(entry)
    endpoints.sort(key=lambda e: (-(e["p95_ms"] or 0), -(e["mean_ms"] or 0), e["view"]))
    return endpoints[:limit]


def _scaled(value: float | None, factor: float, digits: int) -> float | None:
    return None if value is None else round(value * factor, digits)


def _workers(rows: list[tuple[dt.datetime, dict]]) -> list[dict[str, Any]]:
    """CPU (share of one core over the last minute) and RSS of each process in the latest
    sample."""
    if not rows:
        return []
    workers = rows[-1][1].get("workers", {})
    return [
        {
            "pid": pid,
            "cpu_percent": _scaled(info.get("cpu"), 100, 2),
            "rss_mb": _scaled(info.get("rss"), 1 / 2**20, 1),
        }
        for pid, info in sorted(workers.items(), key=lambda item: item[0])
    ]


def operations(*, window: str = "hour", now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the operations page shows for `window` ("hour" or "day"): minute series,
    the slowest endpoints and the latest per-worker CPU/RSS. Raises UnknownWindow."""
    rows = _samples(window, now)
    groups = sorted({g for _, f in rows for g in f.get("groups", {})})
    namespaces = sorted({ns for _, f in rows for ns in f.get("cache", {})})
    redis_roles = sorted({r for _, f in rows for r in (f.get("redis_memory") or {})})
    pids = sorted({pid for _, f in rows for pid in f.get("workers", {})})

    def per(kind: str, names: list[str], figure: str) -> dict[str, list]:
        return {
            name: [(f.get(kind, {}).get(name) or {}).get(figure) for _, f in rows] for name in names
        }

    return {
        "window": window,
        "samples": len(rows),
        "labels": [timezone.localtime(t).strftime("%H:%M") for t, _ in rows],
        "taken_at": [t.isoformat() for t, _ in rows],
        "request_rate": per("groups", groups, "rate"),
        "error_rate": per("groups", groups, "error_rate"),
        "latency_ms": {
            f"p{round(q * 100)}": per("groups", groups, f"p{round(q * 100)}") for q in QUANTILES
        },
        "cache_hit_ratio": per("cache", namespaces, "ratio"),
        "celery_queue_depth": [f.get("celery", {}).get("queue_depth") for _, f in rows],
        "celery_failures": [f.get("celery", {}).get("failures") for _, f in rows],
        "outbox_backlog": [f.get("outbox_backlog") for _, f in rows],
        "db_connections": [f.get("db_connections") for _, f in rows],
        "redis_memory_bytes": {
            role: [(f.get("redis_memory") or {}).get(role) for _, f in rows] for role in redis_roles
        },
        "worker_cpu_percent": {
            pid: [_scaled(v, 100, 2) for v in values]
            for pid, values in per("workers", pids, "cpu").items()
        },
        "worker_rss_mb": {
            pid: [_scaled(v, 1 / 2**20, 1) for v in values]
            for pid, values in per("workers", pids, "rss").items()
        },
        "slowest_endpoints": _slowest(rows, SLOWEST_ENDPOINTS),
        "workers": _workers(rows),
    }
