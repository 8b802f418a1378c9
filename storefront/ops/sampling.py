"""Minute samples of the app's own metrics for the operations page (/staff/ops/).

`take_sample()` runs every minute (beat, storefront.ops.tasks.sample_metrics). It reads the
numbers the /metrics endpoint exposes (the prometheus-client registry: in multiprocess mode the
files of every gunicorn and Celery process), turns the counter and histogram-bucket deltas since
the previous sample into per-minute figures (request rate, p50/p95/p99 latency and error rate
per view group, cache hit ratio per namespace, CPU per worker...), stores them as one OpsSample
row and prunes rows older than SAMPLE_RETENTION. The page reads those rows, never raw requests.

Counters restart from zero when the processes restart (a new multiprocess directory): a value
lower than the previous sample's is taken as a reset, and the delta is the new value.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import CollectorRegistry

from storefront.ops.models import OpsSample
from storefront.redis_sentinel import is_sentinel_url, redis_client

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL = dt.timedelta(minutes=1)
SAMPLE_RETENTION = dt.timedelta(days=1)
# A previous sample older than this is not used for deltas (beat was down): rates restart.
MAX_DELTA_GAP = dt.timedelta(minutes=10)
QUANTILES = (0.5, 0.95, 0.99)

# Sample names (as /metrics prints them) the sampler reads: storefront/ops/metrics.py.
REQUESTS = "storefront_http_requests_total"  # {view, method, status}
LATENCY = "storefront_http_request_duration_seconds"  # histogram {view, method}
CACHE_LOOKUPS = "storefront_cache_lookups_total"  # {namespace, result: hit|miss}
CELERY_TASKS = "storefront_celery_tasks_total"  # {task, outcome: succeeded|failed|retried}
QUEUE_DEPTH = "storefront_celery_queue_length"  # {queue}
OUTBOX_BACKLOG = "storefront_confirmation_emails_owed"
CPU_SECONDS = "storefront_process_cpu_seconds"  # gauge {kind, pid}
RSS_BYTES = "storefront_process_resident_memory_bytes"  # gauge {kind, pid}

# Coarse view groups, tried in order on the words of the view label.
VIEW_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("admin", frozenset({"admin"})),
    ("api", frozenset({"api", "api_urls", "knox"})),
    ("dashboards", frozenset({"dashboards", "dashboard", "ops", "staff"})),
    ("orders", frozenset({"orders", "order", "checkout", "cart"})),
    ("accounts", frozenset({"accounts", "account", "login", "logout", "signup", "password"})),
    ("catalog", frozenset({"catalog", "product", "products", "category", "search", "home"})),
)
OTHER_GROUP = "other"


def view_group(view: str) -> str:
    """The group of a view label ("catalog:product_detail", "storefront.api.products"...)."""
    words = set(re.split(r"[^a-z0-9_]+", view.lower()))
    for group, names in VIEW_GROUPS:
        if words & names:
            return group
    return OTHER_GROUP


# --- reading the registry -------------------------------------------------------------------


@dataclass
class Reading:
    """One reading of the registry: cumulative counters (keys "kind|label|...") and gauges."""

    counters: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    queue_depth: float | None = None
    outbox_backlog: float | None = None


def _key(*parts: object) -> str:
    return "|".join(str(p) for p in parts)


def _add(target: dict[str, float], key: str, value: float) -> None:
    target[key] = target.get(key, 0.0) + value


def default_registry() -> CollectorRegistry:
    """What /metrics serves: every process group's files on this host (web instances and the
    Celery worker) plus the gauges read at scrape time (storefront.ops.metrics.host_registry)."""
    from storefront.ops.metrics import host_registry

    return host_registry()


def _worker(labels: Mapping[str, str]) -> str:
    return f"{labels.get('kind', '')} {labels.get('pid', '')}".strip()


def read_registry(registry: CollectorRegistry) -> Reading:
    """Sums the samples the operations page needs (over method, and over task names)."""
    reading = Reading()
    counters = reading.counters
    for family in registry.collect():
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if math.isnan(value):
                continue
            if name == REQUESTS:
                _add(counters, _key("req", labels.get("view", ""), labels.get("status", "")), value)
            elif name == f"{LATENCY}_bucket":
                _add(counters, _key("lat", labels.get("view", ""), labels.get("le", "")), value)
            elif name == f"{LATENCY}_sum":
                _add(counters, _key("latsum", labels.get("view", "")), value)
            elif name == CACHE_LOOKUPS:
                kind = "hit" if labels.get("result") == "hit" else "miss"
                _add(counters, _key(kind, labels.get("namespace", "")), value)
            elif name == CELERY_TASKS:
                failed = labels.get("outcome") == "failed"
                _add(counters, "celery_failed" if failed else "celery_other", value)
            elif name == CPU_SECONDS:
                counters[_key("cpu", _worker(labels))] = value
            elif name == RSS_BYTES:
                reading.rss[_worker(labels)] = value
            elif name == QUEUE_DEPTH:
                reading.queue_depth = (reading.queue_depth or 0.0) + value
            elif name == OUTBOX_BACKLOG:
                reading.outbox_backlog = (reading.outbox_backlog or 0.0) + value
    return reading


# --- deltas and quantiles -------------------------------------------------------------------


def counter_deltas(current: Mapping[str, float], previous: Mapping[str, float]) -> dict[str, float]:
    """Increase of each counter since `previous`. Counters that went down were reset (processes
    restarted): their increase is the new value. Latency buckets, sum and per-view request counts
    reset together, so a reset seen on any series of a view resets them all."""
    reset_views = {
        key.split("|")[1]
        for key, value in current.items()
        if key.startswith(("lat|", "latsum|", "req|")) and value < previous.get(key, 0.0)
    }
    deltas: dict[str, float] = {}
    for key, value in current.items():
        before = previous.get(key, 0.0)
        parts = key.split("|")
        if value < before or (parts[0] in ("lat", "latsum", "req") and parts[1] in reset_views):
            deltas[key] = value
        else:
            deltas[key] = value - before
    return deltas


def _bound(le: str) -> float:
    return math.inf if le in ("+Inf", "inf", "Inf") else float(le)


def histogram_quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative bucket counts {le: count}: linear
    interpolation inside the bucket holding the rank; in the +Inf bucket, the highest finite
    bound. None without observations."""
    ordered = sorted(((_bound(le), count) for le, count in buckets.items()), key=lambda b: b[0])
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(part / whole, 6)


def minute_figures(deltas: Mapping[str, float], reading: Reading, seconds: float) -> dict:
    """The figures of one minute, from the counter increases over `seconds`."""
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    endpoint_buckets: dict[str, dict[str, float]] = defaultdict(dict)
    endpoint_sum: dict[str, float] = defaultdict(float)
    hits: dict[str, float] = defaultdict(float)
    misses: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = {}
    failures = tasks = 0.0
    for key, delta in deltas.items():
        kind, *labels = key.split("|")
        if kind == "req":
            view, status = labels
            requests[view] += delta
            if status.startswith("5"):
                errors[view] += delta
        elif kind == "lat":
            endpoint_buckets[labels[0]][labels[1]] = delta
        elif kind == "latsum":
            endpoint_sum[labels[0]] += delta
        elif kind == "hit":
            hits[labels[0]] += delta
        elif kind == "miss":
            misses[labels[0]] += delta
        elif kind == "cpu":
            cpu[labels[0]] = delta
        elif kind == "celery_failed":
            failures += delta
            tasks += delta
        elif kind == "celery_other":
            tasks += delta

    endpoints: dict[str, dict] = {}
    for view, buckets in endpoint_buckets.items():
        count = max(buckets.values(), default=0.0)
        if count > 0:
            endpoints[view] = {
                "count": count,
                "sum": endpoint_sum.get(view, 0.0),
                "buckets": buckets,
            }

    groups: dict[str, dict] = {}
    group_buckets: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for view, info in endpoints.items():
        for le, count in info["buckets"].items():
            group_buckets[view_group(view)][le] += count
    group_requests: dict[str, float] = defaultdict(float)
    group_errors: dict[str, float] = defaultdict(float)
    for view, count in requests.items():
        group_requests[view_group(view)] += count
        group_errors[view_group(view)] += errors[view]
    for group in sorted(set(group_requests) | set(group_buckets)):
        n = group_requests.get(group, 0.0)
        figures = {
            "requests": n,
            "errors": group_errors.get(group, 0.0),
            "rate": round(n / seconds, 6) if seconds > 0 else None,
            "error_rate": _ratio(group_errors.get(group, 0.0), n),
        }
        for q in QUANTILES:
            figures[f"p{round(q * 100)}"] = _ms(histogram_quantile(q, group_buckets.get(group, {})))
        groups[group] = figures

    cache = {
        ns: {
            "hits": hits[ns],
            "misses": misses[ns],
            "ratio": _ratio(hits[ns], hits[ns] + misses[ns]),
        }
        for ns in sorted(set(hits) | set(misses))
    }
    workers = {
        pid: {
            "cpu": round(cpu[pid] / seconds, 6) if pid in cpu and seconds > 0 else None,
            "rss": reading.rss.get(pid),
        }
        for pid in sorted(set(cpu) | set(reading.rss))
    }
    return {
        "groups": groups,
        "endpoints": endpoints,
        "cache": cache,
        "workers": workers,
        "celery": {"queue_depth": reading.queue_depth, "failures": failures, "tasks": tasks},
        "outbox_backlog": reading.outbox_backlog,
    }


# --- figures read directly (not process counters) -------------------------------------------


def database_connections() -> int | None:
    """Connections to this database (PostgreSQL's pg_stat_activity); None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def _redis_urls() -> dict[str, str]:
    urls: dict[str, str] = {}
    cache_url = getattr(settings, "REDIS_CACHE_URL", "")
    broker_url = getattr(settings, "STOREFRONT_BROKER_URL", "")
    if cache_url:
        urls["cache"] = cache_url
    redis_schemes = ("redis://", "rediss://", "unix://", "sentinel://")
    # With Sentinel, cache and broker share the one master the sentinels name: read it once.
    same_master = is_sentinel_url(broker_url) and bool(getattr(settings, "REDIS_SENTINELS", None))
    if broker_url.startswith(redis_schemes) and broker_url != cache_url and not same_master:
        urls["broker"] = broker_url
    return urls


def redis_memory() -> dict[str, int | None]:
    """used_memory (INFO memory) of the cache and broker Redis, per role; None if it did not
    answer (the sample is still taken)."""
    import redis

    memory: dict[str, int | None] = {}
    for role, url in _redis_urls().items():
        try:
            # With Sentinel: the master the sentinels name now.
            client, _ = redis_client(url, timeout=2)
            try:
                memory[role] = int(client.info("memory")["used_memory"])
            finally:
                client.close()
        except (redis.RedisError, OSError) as exc:
            logger.warning("ops sample: Redis %s did not answer INFO memory: %s", role, exc)
            memory[role] = None
    return memory


# --- the sample -----------------------------------------------------------------------------


def take_sample(
    *, registry: CollectorRegistry | None = None, now: dt.datetime | None = None
) -> OpsSample:
    """Reads the metrics, stores this minute's figures and prunes samples past the retention."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    reading = read_registry(registry if registry is not None else default_registry())
    extras = {"db_connections": database_connections(), "redis_memory": redis_memory()}
    with transaction.atomic():
        previous = (
            OpsSample.objects.filter(taken_at__lt=now, taken_at__gte=now - MAX_DELTA_GAP)
            .only("taken_at", "counters")
            .order_by("-taken_at")
            .first()
        )
        seconds = (now - previous.taken_at).total_seconds() if previous else 0.0
        deltas = counter_deltas(reading.counters, previous.counters) if previous else {}
        figures = minute_figures(deltas, reading, seconds)
        figures.update(extras)
        sample, _ = OpsSample.objects.update_or_create(
            taken_at=now,
            defaults={"interval": seconds, "figures": figures, "counters": reading.counters},
        )
        prune(now=now)
    return sample


def prune(*, now: dt.datetime | None = None) -> int:
    """Deletes samples older than SAMPLE_RETENTION; returns how many."""
    cutoff = (now or timezone.now()) - SAMPLE_RETENTION
    deleted, _ = OpsSample.objects.filter(taken_at__lt=cutoff).delete()
    return deleted
