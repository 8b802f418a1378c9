"""Reads for the operations page: the stored minute samples only (storefront/ops/sampling.py).

One query per call whatever the window: the rows of the window, `interval` and `figures` only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.utils import timezone

from storefront.ops.models import OpsSample
from storefront.ops.sampling import QUANTILES, histogram_quantile, view_group

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


def _samples(window: str, now: dt.datetime | None) -> list[tuple[dt.datetime, float, dict]]:
    since = (now or timezone.now()) - window_length(window)
    return list(
        OpsSample.objects.filter(taken_at__gt=since)
        .order_by("taken_at")
        .values_list("taken_at", "interval", "figures")
    )


def _quantiles_ms(buckets: dict[str, float]) -> dict[str, float | None]:
    """{"p50_ms": ..., "p95_ms": ..., "p99_ms": ...} from cumulative bucket counts."""
    figures: dict[str, float | None] = {}
    for q in QUANTILES:
        value = histogram_quantile(q, buckets)
        figures[f"p{round(q * 100)}_ms"] = None if value is None else round(value * 1000, 3)
    return figures


def _endpoint_buckets(
    rows: list[tuple[dt.datetime, float, dict]],
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, float]]:
    """Each endpoint's minute bucket deltas, request counts and latency sums added up over the
    window: (buckets, counts, sums)."""
    buckets: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, float] = defaultdict(float)
    sums: dict[str, float] = defaultdict(float)
    for _, _, figures in rows:
        for view, info in figures.get("endpoints", {}).items():
            counts[view] += info["count"]
            sums[view] += info["sum"]
            for le, n in info["buckets"].items():
                buckets[view][le] += n
    return buckets, counts, sums


def _slowest(rows: list[tuple[dt.datetime, float, dict]], limit: int) -> list[dict[str, Any]]:
    """Endpoints by p95 latency over the window, from their summed minute bucket deltas."""
    buckets, counts, sums = _endpoint_buckets(rows)
    endpoints = []
    for view, count in counts.items():
        entry: dict[str, Any] = {
            "view": view,
            "requests": round(count),
            "mean_ms": round(sums[view] / count * 1000, 3) if count else None,
            **_quantiles_ms(buckets[view]),
        }
        endpoints.append(entry)
    endpoints.sort(key=lambda e: (-(e["p95_ms"] or 0), -(e["mean_ms"] or 0), e["view"]))
    return endpoints[:limit]


def _view_groups(rows: list[tuple[dt.datetime, float, dict]]) -> list[dict[str, Any]]:
    """Each view group that had requests in the window, over the whole window: requests, mean
    rate (req/s), 5xx % and latency percentiles of all its requests (the endpoints' bucket
    deltas added up, not an average of the minutes' percentiles)."""
    seconds = sum(interval for _, interval, _ in rows)
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    for _, _, figures in rows:
        for group, info in figures.get("groups", {}).items():
            requests[group] += info.get("requests", 0.0)
            errors[group] += info.get("errors", 0.0)
    group_buckets: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for view, buckets in _endpoint_buckets(rows)[0].items():
        for le, n in buckets.items():
            group_buckets[view_group(view)][le] += n
    return [
        {
            "group": group,
            "requests": round(requests[group]),
            "rate": round(requests[group] / seconds, 3) if seconds > 0 else None,
            "error_percent": round(errors[group] / requests[group] * 100, 2),
            **_quantiles_ms(group_buckets.get(group, {})),
        }
        for group in sorted(requests)
        if requests[group] > 0
    ]


def _cache_namespaces(rows: list[tuple[dt.datetime, float, dict]]) -> list[dict[str, Any]]:
    """Lookups and hit % over the whole window of each cache namespace looked up in it."""
    hits: dict[str, float] = defaultdict(float)
    misses: dict[str, float] = defaultdict(float)
    for _, _, figures in rows:
        for namespace, info in figures.get("cache", {}).items():
            hits[namespace] += info.get("hits", 0.0)
            misses[namespace] += info.get("misses", 0.0)
    lookups = {ns: hits[ns] + misses[ns] for ns in sorted(set(hits) | set(misses))}
    return [
        {
            "namespace": ns,
            "lookups": round(n),
            "hit_percent": round(hits[ns] / n * 100, 2),
        }
        for ns, n in lookups.items()
        if n > 0
    ]


def _scaled(value: float | None, factor: float, digits: int) -> float | None:
    return None if value is None else round(value * factor, digits)


def _workers(rows: list[tuple[dt.datetime, float, dict]]) -> list[dict[str, Any]]:
    """CPU (share of one core over the last minute) and RSS of each process in the latest
    sample."""
    if not rows:
        return []
    workers = rows[-1][2].get("workers", {})
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
    each view group's and cache namespace's figures over the whole window, the slowest
    endpoints and the latest per-worker CPU/RSS. Raises UnknownWindow."""
    rows = _samples(window, now)
    groups = sorted({g for _, _, f in rows for g in f.get("groups", {})})
    namespaces = sorted({ns for _, _, f in rows for ns in f.get("cache", {})})
    redis_roles = sorted({r for _, _, f in rows for r in (f.get("redis_memory") or {})})
    pids = sorted({pid for _, _, f in rows for pid in f.get("workers", {})})

    def per(kind: str, names: list[str], figure: str) -> dict[str, list]:
        return {
            name: [(f.get(kind, {}).get(name) or {}).get(figure) for _, _, f in rows]
            for name in names
        }

    return {
        "window": window,
        "samples": len(rows),
        "labels": [timezone.localtime(t).strftime("%H:%M") for t, _, _ in rows],
        "taken_at": [t.isoformat() for t, _, _ in rows],
        "request_rate": per("groups", groups, "rate"),
        "error_rate": per("groups", groups, "error_rate"),
        "latency_ms": {
            f"p{round(q * 100)}": per("groups", groups, f"p{round(q * 100)}") for q in QUANTILES
        },
        "cache_hit_ratio": per("cache", namespaces, "ratio"),
        "celery_queue_depth": [f.get("celery", {}).get("queue_depth") for _, _, f in rows],
        "celery_failures": [f.get("celery", {}).get("failures") for _, _, f in rows],
        "outbox_backlog": [f.get("outbox_backlog") for _, _, f in rows],
        "db_connections": [f.get("db_connections") for _, _, f in rows],
        "redis_memory_bytes": {
            role: [(f.get("redis_memory") or {}).get(role) for _, _, f in rows]
            for role in redis_roles
        },
        "worker_cpu_percent": {
            pid: [_scaled(v, 100, 2) for v in values]
            for pid, values in per("workers", pids, "cpu").items()
        },
        "worker_rss_mb": {
            pid: [_scaled(v, 1 / 2**20, 1) for v in values]
            for pid, values in per("workers", pids, "rss").items()
        },
        "view_groups": _view_groups(rows),
        "cache_namespaces": _cache_namespaces(rows),
        "slowest_endpoints": _slowest(rows, SLOWEST_ENDPOINTS),
        "workers": _workers(rows),
    }
