"""The operations page: minute samples from real multiprocess metric files, their rates and
percentiles, counter resets, pruning, and the page and JSON (permissions, shape, queries)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import CollectorRegistry, multiprocess

from storefront.accounts.roles import ADMINS, SUPPORT
from storefront.ops.metrics import StateCollector
from storefront.ops.models import OpsSample
from storefront.ops.sampling import (
    SAMPLE_RETENTION,
    counter_deltas,
    histogram_quantile,
    take_sample,
    view_group,
)
from storefront.ops.tasks import sample_metrics
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

# A process that records metrics through storefront.ops.metrics (the module /metrics serves)
# into its own PROMETHEUS_MULTIPROC_DIR, one JSON command a line, like a gunicorn worker would.
RECORDER = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
django.setup()
from storefront.ops import metrics as m
print(os.getpid(), flush=True)
for line in sys.stdin:
    c = json.loads(line)
    for view, status, n in c.get("requests", []):
        m.http_requests.labels(view, "GET", status).inc(n)
    for view, seconds, n in c.get("latency", []):
        for _ in range(n):
            m.http_latency.labels(view, "GET").observe(seconds)
    for namespace, result, n in c.get("cache", []):
        m.cache_lookups.labels(namespace, result).inc(n)
    for task, outcome, n in c.get("tasks", []):
        m.celery_tasks.labels(task, outcome).inc(n)
    if "cpu" in c:
        m.process_cpu.labels("web").set(c["cpu"])
        m.process_rss.labels("web").set(c["rss"])
    print("ok", flush=True)
"""


class Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", RECORDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=settings.BASE_DIR,
        )
        self.pid = self.process.stdout.readline().strip()  # type: ignore[union-attr]

    def record(self, **command: object) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        assert self.process.stdout.readline().strip() == "ok"  # type: ignore[union-attr]

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=10)

    def registry(self) -> CollectorRegistry:
        """What /metrics would read: these files plus the scrape-time gauges."""
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.directory))
        registry.register(StateCollector())
        return registry


@pytest.fixture
def queued_tasks() -> Iterator[int]:
    """Three messages waiting in this test run's Celery queue (no worker consumes it)."""
    client = redis.Redis.from_url(settings.STOREFRONT_BROKER_URL)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    client.delete(queue)
    client.lpush(queue, "a", "b", "c")
    yield 3
    client.delete(queue)
    client.close()


T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def test_two_samples_give_exact_rates_percentiles_and_gauges(
    tmp_path: Path, queued_tasks: int
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    rec = Recorder(directory)
    try:
        rec.record(
            requests=[["catalog:product_list", "200", 10]],
            latency=[["catalog:product_list", 0.7, 10]],
            cache=[["catalog", "hit", 5], ["catalog", "miss", 5]],
            tasks=[["orders.send", "succeeded", 3], ["orders.send", "failed", 1]],
            cpu=10.0,
            rss=100 * 2**20,
        )
        first = take_sample(registry=rec.registry(), now=T0)
        # The next minute: 100 catalog requests (10 of them 500s), 20 logins.
        rec.record(
            requests=[
                ["catalog:product_list", "200", 90],
                ["catalog:product_list", "500", 10],
                ["accounts:login", "200", 20],
            ],
            latency=[
                ["catalog:product_list", 0.03, 50],  # bucket le=0.05
                ["catalog:product_list", 0.07, 40],  # le=0.1
                ["catalog:product_list", 0.2, 10],  # le=0.25
                ["accounts:login", 0.004, 20],  # le=0.005
            ],
            cache=[["catalog", "hit", 30], ["catalog", "miss", 10]],
            tasks=[["orders.send", "succeeded", 7], ["orders.send", "failed", 2]],
            cpu=40.0,
            rss=120 * 2**20,
        )
        second = take_sample(registry=rec.registry(), now=T0 + dt.timedelta(minutes=1))
    finally:
        rec.close()

    assert first.interval == 0 and first.figures["groups"] == {}
    assert second.interval == 60.0
    figures = second.figures
    assert figures["groups"] == {
        "accounts": {
            "requests": 20.0,
            "errors": 0.0,
            "rate": round(20 / 60, 6),
            "error_rate": 0.0,
            "p50": 2.5,
            "p95": 4.75,
            "p99": 4.95,
        },
        "catalog": {
            "requests": 100.0,
            "errors": 10.0,
            "rate": round(100 / 60, 6),
            "error_rate": 0.1,
            "p50": 50.0,  # 0.025 + 0.025 * 50/50
            "p95": 175.0,  # 0.1 + 0.15 * 5/10
            "p99": 235.0,  # 0.1 + 0.15 * 9/10
        },
    }
    assert figures["cache"] == {"catalog": {"hits": 30.0, "misses": 10.0, "ratio": 0.75}}
    assert figures["celery"] == {"queue_depth": 3.0, "failures": 2.0, "tasks": 9.0}
    assert figures["workers"] == {f"web {rec.pid}": {"cpu": 0.5, "rss": 120.0 * 2**20}}
    assert figures["outbox_backlog"] == 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        assert figures["db_connections"] == cursor.fetchone()[0]
    roles = {"cache"} | (
        {"broker"} if settings.STOREFRONT_BROKER_URL != settings.REDIS_CACHE_URL else set()
    )
    assert set(figures["redis_memory"]) == roles
    assert all(isinstance(v, int) and v > 0 for v in figures["redis_memory"].values())


def test_a_counter_reset_counts_the_new_values(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    rec = Recorder(before)
    try:
        rec.record(
            requests=[["catalog:product_list", "200", 500]],
            latency=[["catalog:product_list", 0.03, 500]],
        )
        take_sample(registry=rec.registry(), now=T0)
    finally:
        rec.close()
    # The processes restarted with an empty directory: 4 requests since.
    rec = Recorder(after)
    try:
        rec.record(
            requests=[["catalog:product_list", "200", 4]],
            latency=[["catalog:product_list", 0.03, 4]],
        )
        sample = take_sample(registry=rec.registry(), now=T0 + dt.timedelta(minutes=1))
    finally:
        rec.close()

    catalog = sample.figures["groups"]["catalog"]
    assert (catalog["requests"], catalog["rate"], catalog["p50"]) == (4.0, round(4 / 60, 6), 37.5)


def test_counter_deltas_and_quantiles() -> None:
    assert counter_deltas({"hit|a": 5.0, "miss|a": 2.0}, {"hit|a": 3.0, "miss|a": 7.0}) == {
        "hit|a": 2.0,
        "miss|a": 2.0,  # went down: reset, the new value is the increase
    }
    # One series of a view reset: all its latency series count from zero.
    assert counter_deltas(
        {"lat|v|0.1": 1.0, "lat|v|+Inf": 3.0}, {"lat|v|0.1": 0.0, "lat|v|+Inf": 9.0}
    ) == {"lat|v|0.1": 1.0, "lat|v|+Inf": 3.0}
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {"0.1": 0.0, "+Inf": 0.0}) is None
    assert histogram_quantile(0.99, {"0.1": 1.0, "0.5": 1.0, "+Inf": 10.0}) == 0.5
    assert [view_group(v) for v in ("admin:index", "api:product-list", "orders:checkout")] == [
        "admin",
        "api",
        "orders",
    ]
    assert [view_group(v) for v in ("dashboards:staff", "<unresolved>", "healthz")] == [
        "dashboards",
        "other",
        "other",
    ]


def test_a_sample_prunes_samples_older_than_a_day(tmp_path: Path) -> None:
    now = T0
    old = [now - SAMPLE_RETENTION - dt.timedelta(minutes=m) for m in (1, 30, 600)]
    kept = [now - SAMPLE_RETENTION, now - dt.timedelta(minutes=1)]
    OpsSample.objects.bulk_create(OpsSample(taken_at=t) for t in old + kept)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))

    take_sample(registry=registry, now=now)

    assert list(OpsSample.objects.values_list("taken_at", flat=True)) == [*kept, now]


def test_beat_samples_every_minute() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["sample-metrics"]
    assert (entry["task"], entry["schedule"]) == ("storefront.ops.tasks.sample_metrics", 60.0)

    sample_metrics.delay()  # eager in the test settings; reads this process's metrics

    sample = OpsSample.objects.get()
    assert dt.timedelta(0) <= timezone.now() - sample.taken_at < dt.timedelta(minutes=1)
    assert sample.figures["db_connections"] >= 1


# --- the page -------------------------------------------------------------------------------


def _figures(minute: int) -> dict:
    buckets = {"0.05": 50.0, "0.1": 90.0, "0.25": 100.0, "+Inf": 100.0}
    return {
        "groups": {
            "catalog": {
                "requests": 100.0,
                "errors": float(minute % 3),
                "rate": 1.666667,
                "error_rate": (minute % 3) / 100,
                "p50": 50.0,
                "p95": 175.0,
                "p99": 235.0,
            },
            "accounts": {
                "requests": 20.0,
                "errors": 0.0,
                "rate": 0.333333,
                "error_rate": 0.0,
                "p50": 2.5,
                "p95": 4.75,
                "p99": 4.95,
            },
        },
        "endpoints": {
            "catalog:product_list": {"count": 100.0, "sum": 0.06 * 100, "buckets": buckets},
            "accounts:login": {
                "count": 20.0,
                "sum": 0.08,
                "buckets": {"0.005": 20.0, "+Inf": 20.0},
            },
        },
        "cache": {"catalog": {"hits": 3.0, "misses": 1.0, "ratio": 0.75}},
        "workers": {"web 101": {"cpu": 0.25, "rss": 50 * 2**20}},
        "celery": {"queue_depth": 2.0, "failures": 1.0, "tasks": 5.0},
        "outbox_backlog": 4.0,
        "db_connections": 7,
        "redis_memory": {"cache": 2**20},
    }


def _store(count: int) -> dt.datetime:
    now = timezone.now().replace(second=0, microsecond=0)
    OpsSample.objects.bulk_create(
        OpsSample(taken_at=now - dt.timedelta(minutes=i), interval=60, figures=_figures(i))
        for i in range(count)
    )
    return now


def _admin_client() -> Client:
    client = Client()
    client.force_login(StaffFactory(roles=[ADMINS]))
    return client


def test_anonymous_goes_to_login_and_other_staff_get_403() -> None:
    anonymous = Client()
    for url in ("/staff/ops/", "/staff/ops.json"):
        response = anonymous.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/staff/ops")

    support = Client()
    support.force_login(StaffFactory(roles=[SUPPORT]))
    response = support.get("/staff/ops/")
    assert response.status_code == 403
    assert "the operations page" in response.content.decode()
    assert "ops.view_operations" in response.content.decode()
    assert support.get("/staff/ops.json").status_code == 403


def test_json_shape_and_slowest_endpoints() -> None:
    _store(3)
    response = _admin_client().get("/staff/ops.json?window=hour")

    assert response.status_code == 200
    data = response.json()
    assert data["window"] == "hour" and data["samples"] == 3
    assert len(data["labels"]) == len(data["taken_at"]) == 3
    assert data["request_rate"] == {"accounts": [0.333333] * 3, "catalog": [1.666667] * 3}
    # Oldest first.
    assert data["error_rate"] == {"accounts": [0.0] * 3, "catalog": [0.02, 0.01, 0.0]}
    assert data["latency_ms"] == {
        "p50": {"accounts": [2.5] * 3, "catalog": [50.0] * 3},
        "p95": {"accounts": [4.75] * 3, "catalog": [175.0] * 3},
        "p99": {"accounts": [4.95] * 3, "catalog": [235.0] * 3},
    }
    # The whole window: 3 minutes of 60 s; percentiles from the added-up buckets.
    assert data["view_groups"] == [
        {
            "group": "accounts",
            "requests": 60,
            "rate": 0.333,
            "error_percent": 0.0,
            "p50_ms": 2.5,
            "p95_ms": 4.75,
            "p99_ms": 4.95,
        },
        {
            "group": "catalog",
            "requests": 300,
            "rate": 1.667,
            "error_percent": 1.0,  # 0 + 1 + 2 of 300
            "p50_ms": 50.0,
            "p95_ms": 175.0,
            "p99_ms": 235.0,
        },
    ]
    assert data["cache_namespaces"] == [
        {"namespace": "catalog", "lookups": 12, "hit_percent": 75.0}
    ]
    assert data["cache_hit_ratio"] == {"catalog": [0.75] * 3}
    assert data["celery_queue_depth"] == [2.0] * 3
    assert data["celery_failures"] == [1.0] * 3
    assert data["outbox_backlog"] == [4.0] * 3
    assert data["db_connections"] == [7] * 3
    assert data["redis_memory_bytes"] == {"cache": [2**20] * 3}
    assert data["worker_cpu_percent"] == {"web 101": [25.0] * 3}
    assert data["worker_rss_mb"] == {"web 101": [50.0] * 3}
    assert data["workers"] == [{"pid": "web 101", "cpu_percent": 25.0, "rss_mb": 50.0}]
    assert data["slowest_endpoints"] == [
        {
            "view": "catalog:product_list",
            "requests": 300,
            "mean_ms": 60.0,
            "p50_ms": 50.0,
            "p95_ms": 175.0,
            "p99_ms": 235.0,
        },
        {
            "view": "accounts:login",
            "requests": 60,
            "mean_ms": 4.0,
            "p50_ms": 2.5,
            "p95_ms": 4.75,
            "p99_ms": 4.95,
        },
    ]


def test_window_tables_leave_out_groups_and_namespaces_without_traffic() -> None:
    # Counters that exist but did not move: a line at zero in the charts, no table row.
    quiet = {
        "groups": {"dashboards": {"requests": 0.0, "errors": 0.0, "rate": 0.0}},
        "cache": {"sessions": {"hits": 0.0, "misses": 0.0, "ratio": None}},
    }
    OpsSample.objects.create(taken_at=timezone.now(), interval=60, figures=quiet)

    data = _admin_client().get("/staff/ops.json").json()

    assert data["request_rate"] == {"dashboards": [0.0]}
    assert data["cache_hit_ratio"] == {"sessions": [None]}
    assert data["view_groups"] == [] and data["cache_namespaces"] == []


def test_bad_window_is_a_400_with_a_message() -> None:
    client = _admin_client()
    response = client.get("/staff/ops.json?window=week")
    assert response.status_code == 400
    assert response.json() == {"detail": "Unknown window “week”: use one of hour, day."}
    response = client.get("/staff/ops/?window=week")
    assert response.status_code == 400
    assert "Unknown window “week”: use one of hour, day." in response.content.decode()


def test_page_shows_charts_and_tables() -> None:
    _store(5)
    response = _admin_client().get("/staff/ops/?window=day")

    assert response.status_code == 200
    body = response.content.decode()
    assert "5 minute samples in the last day" in body
    assert body.count("<canvas data-ops-chart=") == 13
    assert '<script id="ops-data" type="application/json">' in body
    assert "js/ops.js" in body and "vendor/chart-4.6.1.umd.min.js" in body
    assert "<script>" not in body  # no inline script: the CSP allows 'self' only
    assert '<td>catalog:product_list</td><td class="num">500</td>' in body
    assert '<td>web 101</td><td class="num">25.0</td><td class="num">50.0</td>' in body
    # Five minutes: errors 0, 1, 2, 0, 1 of 500 catalog requests; 15 of 20 cache lookups hit.
    assert (
        '<td>catalog</td><td class="num">500</td><td class="num">1.667</td>'
        '<td class="num">0.80</td><td class="num">50.0</td><td class="num">175.0</td>'
        '<td class="num">235.0</td>'
    ) in body
    assert '<td>catalog</td><td class="num">20</td><td class="num">75.00</td>' in body


@pytest.mark.parametrize("url", ["/staff/ops/?window=day", "/staff/ops.json?window=day"])
def test_query_count_is_the_same_for_an_hour_and_a_day_of_samples(url: str) -> None:
    client = _admin_client()
    counts = []
    for size in (60, 1440):
        OpsSample.objects.all().delete()
        _store(size)
        client.get(url)  # warm the session and permission caches like any later request
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200
        if "json" in url:
            assert response.json()["samples"] == size
        else:
            assert f"{size} minute samples in the last day" in response.content.decode()
        counts.append(len(ctx.captured_queries))
    # Session, user, the user's permissions (groups and own), the samples.
    # The user, their permissions (own and through roles), the samples: one query for any size.
    assert counts == [4, 4]


# --- the link in the site navigation (storefront/templates/base.html) ---------------------

OPS_LINK = '<a href="/staff/ops/">Operations</a>'


def test_navigation_links_to_the_page_only_for_staff_who_may_open_it() -> None:
    ops_staff, support = Client(), Client()
    ops_staff.force_login(StaffFactory(roles=[ADMINS]))
    support.force_login(StaffFactory(roles=[SUPPORT]))
    for url in ("/products/", "/accounts/profile/", "/staff/ops/"):
        assert OPS_LINK in ops_staff.get(url).content.decode(), url
    for url in ("/products/", "/accounts/profile/"):
        assert OPS_LINK not in support.get(url).content.decode(), url
    assert OPS_LINK not in Client().get("/products/").content.decode()
    # The permission alone, without "Staff status", opens nothing: no link either.
    not_staff = Client()
    not_staff.force_login(StaffFactory(roles=[ADMINS], is_staff=False))
    assert OPS_LINK not in not_staff.get("/accounts/profile/").content.decode()
    assert not_staff.get("/staff/ops/").status_code == 403


def test_navigation_link_costs_no_query() -> None:
    # The nav's permission checks share the user's permission cache, loaded by the first one:
    # the session's user, their own permissions, their roles' permissions. Admins and Support
    # (who get no link) make the same queries.
    counts = []
    for role in (ADMINS, SUPPORT):
        client = Client()
        client.force_login(StaffFactory(roles=[role]))
        client.get("/accounts/profile/")  # warm the session cache like any later request
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/accounts/profile/")
        assert response.status_code == 200
        assert (OPS_LINK in response.content.decode()) == (role == ADMINS)
        counts.append(len(ctx.captured_queries))
    assert counts == [3, 3]
