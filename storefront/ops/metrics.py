"""Prometheus metrics of every Storefront process (docs/monitoring.md lists them).

prometheus-client in multiprocess mode: each gunicorn worker and each Celery pool process writes
its values to files in PROMETHEUS_MULTIPROC_DIR (settings.py exports it before this module
imports prometheus_client), and /metrics adds them up when scraped. Counters and histograms of
dead processes stay in their files, so recycled workers lose nothing; gunicorn's child_exit hook
marks a dead worker so its `livesum`/`liveall` gauges drop out.

Labels are bounded: a view is labelled by its URL pattern name, never by the raw path.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time

from django.conf import settings

# prometheus_client picks multiprocess mode when it is imported: settings.py sets the variable.
assert settings.PROMETHEUS_MULTIPROC_DIR

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

logger = logging.getLogger("storefront.metrics")

PREFIX = "storefront_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUERY_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# --- HTTP (storefront/ops/metrics_middleware.py) -------------------------------------------

http_requests = Counter(
    PREFIX + "http_requests_total",
    "Requests answered, by view (URL pattern name), method and status code.",
    ["view", "method", "status"],
)
http_latency = Histogram(
    PREFIX + "http_request_duration_seconds",
    "Time from the request entering Django to its response, by view and method.",
    ["view", "method"],
    buckets=LATENCY_BUCKETS,
)
http_exceptions = Counter(
    PREFIX + "http_exceptions_total",
    "Requests a view raised an unhandled exception for, by view and exception class.",
    ["view", "exception"],
)
db_queries = Histogram(
    PREFIX + "http_request_db_queries",
    "Database queries per request, by view.",
    ["view"],
    buckets=QUERY_BUCKETS,
)
db_time = Histogram(
    PREFIX + "http_request_db_seconds",
    "Time spent in database queries per request, by view.",
    ["view"],
    buckets=LATENCY_BUCKETS,
)
page_cache = Counter(
    PREFIX + "page_cache_responses_total",
    "Responses of page-cached views by X-Storefront-Cache outcome (HIT, MISS, BYPASS).",
    ["view", "result"],
)
sessions = Counter(
    PREFIX + "session_operations_total",
    "Session operations: load (the session was read), save (written), delete (cookie cleared).",
    ["operation"],
)

# --- Cache (storefront/caching.py) ---------------------------------------------------------

cache_lookups = Counter(
    PREFIX + "cache_lookups_total",
    "Lookups in the application cache by namespace and result (hit, miss).",
    ["namespace", "result"],
)

# --- Celery (storefront/ops/metrics_celery.py) ---------------------------------------------

celery_tasks = Counter(
    PREFIX + "celery_tasks_total",
    "Tasks finished in a worker, by task name and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
)
celery_task_duration = Histogram(
    PREFIX + "celery_task_duration_seconds",
    "Run time of a task in a worker (any outcome), by task name.",
    ["task"],
    buckets=TASK_BUCKETS,
)

# --- Processes -----------------------------------------------------------------------------

# One series per live process (the `pid` label is added by multiprocess mode); dead ones are
# dropped by mark_process_dead (gunicorn's child_exit hook, Celery's worker_process_shutdown).
process_rss = Gauge(
    PREFIX + "process_resident_memory_bytes",
    "Resident memory of each live Storefront process.",
    ["kind"],
    multiprocess_mode="liveall",
)
process_cpu = Gauge(
    PREFIX + "process_cpu_seconds",
    "CPU time (user + system) used by each live Storefront process since it started.",
    ["kind"],
    multiprocess_mode="liveall",
)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_process_lock = threading.Lock()
_last_process_sample = [0.0]
PROCESS_SAMPLE_SECONDS = 1.0


def sample_process(kind: str, *, force: bool = False) -> None:
    """Record this process's RSS and CPU time (from /proc/self), at most once a second."""
    now = time.monotonic()
    with _process_lock:
        if not force and now - _last_process_sample[0] < PROCESS_SAMPLE_SECONDS:
            return
        _last_process_sample[0] = now
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:  # not Linux
        return
    # After the ")" of comm: state is field 3, utime 14, stime 15, rss 24 (man 5 proc).
    process_cpu.labels(kind).set((int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    process_rss.labels(kind).set(int(fields[21]) * _PAGE_SIZE)


# --- Read at scrape time -------------------------------------------------------------------


class StateCollector(Collector):
    """Gauges read when /metrics is scraped: queue depth per Celery queue, confirmation emails
    owed, imports and exports in progress. A source that does not answer is left out (its
    series disappears) instead of failing the scrape."""

    def collect(self) -> list[GaugeMetricFamily]:  # type: ignore[override]
        families: list[GaugeMetricFamily] = []
        depth = GaugeMetricFamily(
            PREFIX + "celery_queue_length",
            "Tasks waiting in each Celery queue the app knows (Redis: all its priority lists; "
            "RabbitMQ: ready messages).",
            labels=["queue"],
        )
        for queue, length in queue_lengths().items():
            depth.add_metric([queue], length)
        families.append(depth)
        for name, doc, read in _DATABASE_GAUGES:
            try:
                value = read()
            except Exception as exc:  # database down: /readyz says so; the scrape still answers
                logger.warning("metrics: %s left out: %s", name, exc)
                continue
            families.append(GaugeMetricFamily(PREFIX + name, doc, value=value))
        families.extend(_replica_families())
        return families


# Per-replica gauges (only with DATABASE_REPLICA_URLS): whether it answers, and its lag.
REPLICA_UP = PREFIX + "db_replica_up"
REPLICA_LAG = PREFIX + "db_replica_lag_seconds"


def _replica_families() -> list[GaugeMetricFamily]:
    """Per read replica (DATABASE_REPLICA_URLS): whether it answers, and how far its replay is
    behind the primary. No replicas: no series."""
    from storefront import db_router

    aliases = db_router.replicas()
    if not aliases:
        return []
    up = GaugeMetricFamily(
        REPLICA_UP,
        "1 when the read replica answers, 0 when it does not (reads then go to the primary).",
        labels=["replica"],
    )
    lag = GaugeMetricFamily(
        REPLICA_LAG,
        "Seconds the replica's replay is behind: 0 when it has replayed all it received, else "
        "the age of the last transaction it replayed.",
        labels=["replica"],
    )
    for alias in aliases:
        try:
            seconds = db_router.replica_lag_seconds(alias)
        except Exception as exc:  # replica down: its lag series disappears, up says 0
            logger.warning("metrics: replica %s lag left out: %s", alias, exc)
            up.add_metric([alias], 0)
            continue
        up.add_metric([alias], 1)
        lag.add_metric([alias], seconds)
    return [up, lag]


# Seconds a scrape waits for the broker (each of connect, read, write) before leaving it out.
BROKER_TIMEOUT = 1.0


def queue_lengths() -> dict[str, int]:
    """{queue: tasks waiting} for every queue the Celery app knows (celery_queue_names), read from
    the broker: Redis (LLEN of the queue's list and of its priority lists) or RabbitMQ (the
    queue's ready messages). {} without a broker, for another transport, or when the broker does
    not answer within BROKER_TIMEOUT: a scrape never fails for it."""
    url = settings.STOREFRONT_BROKER_URL
    try:
        if url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
            return _redis_queue_lengths(url, celery_queue_names())
        if url.startswith(("amqp://", "amqps://", "pyamqp://")):
            return _amqp_queue_lengths(url, celery_queue_names())
    except Exception as exc:  # broker down or refusing us: the queue series disappear
        logger.warning("metrics: queue lengths left out: %s", exc)
    return {}


def celery_queue_names() -> list[str]:
    """The queues the Celery app knows: its default queue, those declared in CELERY_TASK_QUEUES
    (or that this process routed a task to), and those named by CELERY_TASK_ROUTES mappings.
    Router functions cannot be enumerated: declare their queues in CELERY_TASK_QUEUES."""
    from storefront.celery import app

    names = {app.conf.task_default_queue, *app.amqp.queues}
    routes = app.conf.task_routes or ()
    for router in routes if isinstance(routes, list | tuple) else (routes,):
        if isinstance(router, dict):
            names.update(_routed_queue(route) for route in router.values())
    return sorted(name for name in names if name)


def _routed_queue(route: object) -> str:
    """The queue a task_routes entry names: "queue", {"queue": "queue"} or a kombu Queue."""
    queue = route.get("queue", "") if isinstance(route, dict) else route
    return queue if isinstance(queue, str) else getattr(queue, "name", "")


def _redis_queue_lengths(url: str, queues: list[str]) -> dict[str, int]:
    """kombu's Redis transport keeps a queue as one list per priority step: the queue's own
    name for step 0, `<queue><sep><step>` for the others (Channel._q_for_pri), every key
    prefixed by global_keyprefix; CELERY_BROKER_TRANSPORT_OPTIONS may change all three."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    from storefront.redis_sentinel import redis_client

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    steps = sorted(set(options.get("priority_steps", PRIORITY_STEPS)))
    sep = options.get("sep", Channel.sep)
    prefix = options.get("global_keyprefix", "")
    keys = {
        queue: [prefix + (f"{queue}{sep}{step}" if step else queue) for step in steps]
        for queue in queues
    }
    # With Sentinel (sentinel:// URL): the master the sentinels name now.
    client, _ = redis_client(url, timeout=BROKER_TIMEOUT)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for key in keys[queue]:
                    pipe.llen(key)
            lengths = iter(pipe.execute())
    finally:
        client.close()
    return {queue: sum(int(next(lengths)) for _ in keys[queue]) for queue in queues}


def _amqp_queue_lengths(url: str, queues: list[str]) -> dict[str, int]:
    """RabbitMQ: message_count of a passive queue.declare (ready messages; those delivered to a
    worker and not acknowledged yet are not counted). A queue not declared yet holds none."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    lengths: dict[str, int] = {}
    with Connection(
        url,
        connect_timeout=BROKER_TIMEOUT,
        transport_options={"read_timeout": BROKER_TIMEOUT, "write_timeout": BROKER_TIMEOUT},
    ) as connection:
        connection.ensure_connection(max_retries=0)  # no reconnect loop inside a scrape
        channel = connection.channel()
        for queue in queues:
            try:
                lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except NotFound:  # RabbitMQ closed the channel with its 404: open another
                lengths[queue] = 0
                channel = connection.channel()
        channel.close()
    return lengths


def _confirmation_emails_owed() -> int:
    from storefront.orders.selectors import confirmation_emails_owed_count

    return confirmation_emails_owed_count()


def _imports_running() -> int:
    from storefront.catalog.selectors import running_product_imports_count

    return running_product_imports_count()


def _exports_running() -> int:
    from storefront.dashboards.selectors import running_order_exports_count

    return running_order_exports_count()


_DATABASE_GAUGES = (
    (
        "confirmation_emails_owed",
        "Order confirmation emails not sent yet (pending, sending or failed deliveries).",
        _confirmation_emails_owed,
    ),
    ("imports_in_progress", "Product CSV imports queued or running.", _imports_running),
    ("exports_in_progress", "Order CSV exports queued or running.", _exports_running),
)


class HostCollector(Collector):
    """Every process group's files under STOREFRONT_METRICS_DIR, merged as prometheus-client's
    MultiProcessCollector merges one directory's (counters summed, live gauges per pid)."""

    def collect(self):  # type: ignore[no-untyped-def]
        files = {
            os.path.realpath(f)
            for pattern in (
                os.path.join(settings.STOREFRONT_METRICS_DIR, "*", "*.db"),
                # A directory given by the environment may lie outside the root.
                os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db"),
            )
            for f in glob.glob(pattern)
        }
        return multiprocess.MultiProcessCollector.merge(sorted(files), accumulate=True)


def host_registry() -> CollectorRegistry:
    """Every Storefront process of this host (all process groups) plus the scrape-time gauges:
    what /metrics serves (and what the operations page samples)."""
    registry = CollectorRegistry()
    registry.register(HostCollector())
    registry.register(StateCollector())
    return registry


def render() -> tuple[bytes, str]:
    """/metrics: (body, content type)."""
    sample_process("web", force=True)
    return generate_latest(host_registry()), CONTENT_TYPE_LATEST
