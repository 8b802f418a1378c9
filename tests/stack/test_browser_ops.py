"""The operations page (/staff/ops/) in Debian's Chromium through the stack `make run` starts.

The samples are taken the way beat takes them: `storefront.ops.sampling.take_sample`, the
service the beat task runs, in a process of the served stack's own environment (its database,
its metrics directory with every gunicorn's and the worker's files, its cache Redis), with
browser traffic through nginx between samples so that the minutes have requests to count.
Everything else is checked through the pages, as in test_browser.py.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from harness import storefront_command
from harness.served import ServedStack
from storefront.seeding import DEMO_STAFF
from tests.stack.conftest import Site, WatchedPage, new_watched_page
from tests.stack.test_browser import CHART_DRAWN_JS, log_in

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("served-stack")]

OPS_LINK = "nav.site-nav a[href='/staff/ops/']"
CHART_JS = re.compile(r"/static/vendor/chart-4\.6\.1\.umd\.min(\.[0-9a-f]+)?\.js$")
# The page's charts (operations.html), each a <canvas data-ops-chart="...">.
CHARTS = [
    "request_rate",
    "error_rate",
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "cache_hit_ratio",
    "worker_cpu_percent",
    "worker_rss_mb",
    "celery_queue_depth",
    "celery_failures",
    "outbox_backlog",
    "db_connections",
    "redis_memory_bytes",
]
# Every chart drawn by Chart.js, and each one's series: {key: {label: [values]}}.
CHART_SERIES_JS = """
(keys) => Object.fromEntries(keys.map((key) => {
  const chart = Chart.getChart(document.querySelector(`canvas[data-ops-chart="${key}"]`));
  if (!chart) return [key, null];
  return [key, Object.fromEntries(chart.data.datasets.map((d) => [d.label, d.data]))];
}))
"""
TAKE_SAMPLE = """
import datetime as dt, json
from django.utils import timezone
from storefront.ops.sampling import take_sample
sample = take_sample(now=timezone.now() - dt.timedelta(minutes={minutes_ago}))
groups = sorted(sample.figures["groups"])
print(json.dumps({{"taken_at": sample.taken_at.isoformat(), "groups": groups}}))
"""
GRANT_SUPPORT_ROLE = """
from storefront.accounts.roles import SUPPORT
from storefront.accounts.services import user_create
user_create(username="{username}", password="{password}", roles=[SUPPORT], is_staff=True)
"""


def stack_shell(stack: ServedStack, code: str) -> str:
    """`storefront shell -c CODE` with the environment the stack's processes have: run.sh adds
    the metrics directory and, when it started one, the cache's own Redis."""
    env = {**stack.env, "STOREFRONT_METRICS_DIR": str(stack.var_dir / "metrics")}
    cache_socket = stack.var_dir / "run" / "cache-redis.sock"
    if cache_socket.exists():
        env["REDIS_CACHE_URL"] = f"unix://{cache_socket}"
    return storefront_command(["shell", "-c", code], env, timeout=120)


def take_sample(stack: ServedStack, minutes_ago: int) -> dict:
    """One minute sample, as beat takes it, stamped `minutes_ago` minutes back (beat stamps
    the current minute; distinct minutes give distinct rows without waiting for them)."""
    output = stack_shell(stack, TAKE_SAMPLE.format(minutes_ago=minutes_ago))
    printed = [line for line in output.splitlines() if line.startswith('{"taken_at"')]
    assert printed, output
    return json.loads(printed[0])


def browse(watched: WatchedPage, paths: list[str]) -> None:
    for path in paths:
        response = watched.page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        # Every request of the page done (the favicon too): leaving earlier would abort it.
        watched.page.wait_for_load_state("networkidle")


def wait_for_charts(watched: WatchedPage) -> dict[str, dict[str, list]]:
    """Wait until every chart is drawn (a Chart.js chart with painted pixels); their series."""
    watched.page.wait_for_load_state("networkidle")
    for key in CHARTS:
        watched.page.wait_for_function(
            CHART_DRAWN_JS, arg=f'canvas[data-ops-chart="{key}"]', timeout=15_000
        )
    series = watched.page.evaluate(CHART_SERIES_JS, CHARTS)
    assert all(series[key] is not None for key in CHARTS), series
    return series


def positive(values: list) -> bool:
    return any(v is not None and v > 0 for v in values)


def test_ops_staff_see_charts_of_beat_samples_and_switch_hour_and_day(
    watched_page: WatchedPage, served_stack: ServedStack, site: Site
) -> None:
    page = watched_page.page
    log_in(watched_page, *DEMO_STAFF)
    expect(page.locator(OPS_LINK)).to_have_text("Operations")

    # Three minutes of samples, with shop traffic through nginx in between.
    taken = [take_sample(served_stack, minutes_ago=3)]
    for minutes_ago in (2, 1):
        browse(watched_page, ["/", "/products/", "/products/?sort=price_asc", "/cart/"])
        taken.append(take_sample(served_stack, minutes_ago=minutes_ago))
    assert len({t["taken_at"] for t in taken}) == 3, taken
    assert "catalog" in taken[1]["groups"] and "catalog" in taken[2]["groups"], taken

    page.locator(OPS_LINK).click()
    expect(page).to_have_url(re.compile(r"/staff/ops/$"))
    expect(page.locator("h1")).to_have_text("Operations")
    summary = page.locator("#ops-summary")
    expect(summary).to_contain_text("in the last hour")
    hour_samples = int(re.search(r"(\d+) minute samples?", summary.inner_text()).group(1))
    assert hour_samples >= 3, summary.inner_text()
    expect(page.locator("#ops-empty")).to_have_count(0)
    series = wait_for_charts(watched_page)
    watched_page.screenshot("ops-hour")

    # Figures of the traffic above, drawn from the samples.
    for key in ("request_rate", "latency_ms.p50", "latency_ms.p95", "latency_ms.p99"):
        assert positive(series[key].get("catalog", [])), (key, series[key])
    assert "catalog" in series["error_rate"], series["error_rate"]
    assert any(label.startswith("web ") for label in series["worker_rss_mb"]), series
    assert any(positive(values) for values in series["worker_rss_mb"].values()), series
    assert positive(series["db_connections"]["connections"]), series["db_connections"]
    assert "cache" in series["redis_memory_bytes"], series["redis_memory_bytes"]
    assert positive(series["redis_memory_bytes"]["cache"]), series["redis_memory_bytes"]
    assert len(series["celery_queue_depth"]["waiting"]) == hour_samples
    assert len(series["outbox_backlog"]["owed"]) == hour_samples
    expect(page.locator("#ops-view-groups tbody tr", has_text="catalog")).to_have_count(1)
    expect(page.locator("#ops-cache-namespaces tbody tr", has_text="catalog")).to_have_count(1)
    expect(page.locator("#ops-slowest tbody tr").first).to_be_visible()
    expect(page.locator("#ops-workers tbody tr", has_text="web ").first).to_be_visible()

    # Chart.js came from the site's own static files (through nginx), nothing from elsewhere.
    assert page.evaluate("window.Chart.version") == "4.6.1"
    chart_js = [u for u in watched_page.requested_urls if CHART_JS.search(urlsplit(u).path)]
    assert chart_js and all(urlsplit(u).netloc == site.netloc for u in chart_js), chart_js

    # The day: at least the hour's samples, the same charts; and back.
    page.locator("a.btn", has_text="Last day").click()
    expect(page).to_have_url(re.compile(r"/staff/ops/\?window=day$"))
    expect(page.locator("a[aria-current=page]")).to_have_text("Last day")
    expect(summary).to_contain_text("in the last day")
    day_samples = int(re.search(r"(\d+) minute samples?", summary.inner_text()).group(1))
    assert day_samples >= hour_samples
    expect(page.locator("a.btn", has_text="JSON")).to_have_attribute(
        "href", "/staff/ops.json?window=day"
    )
    day_series = wait_for_charts(watched_page)
    assert len(day_series["db_connections"]["connections"]) == day_samples
    assert positive(day_series["request_rate"]["catalog"]), day_series["request_rate"]
    watched_page.screenshot("ops-day")
    data = page.evaluate("fetch('/staff/ops.json?window=day').then((r) => r.json())")
    assert data["window"] == "day" and data["samples"] == day_samples
    assert data["request_rate"]["catalog"] == day_series["request_rate"]["catalog"]

    page.locator("a.btn", has_text="Last hour").click()
    expect(page).to_have_url(re.compile(r"/staff/ops/\?window=hour$"))
    expect(page.locator("a[aria-current=page]")).to_have_text("Last hour")
    expect(summary).to_contain_text("in the last hour")
    wait_for_charts(watched_page)
    watched_page.screenshot("ops-hour-again")
    watched_page.assert_clean()


def test_staff_without_the_permission_get_no_link_and_a_403(
    chromium: Browser, served_stack: ServedStack, site: Site, request: pytest.FixtureRequest
) -> None:
    username, password = f"support{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    stack_shell(served_stack, GRANT_SUPPORT_ROLE.format(username=username, password=password))
    context, watched = new_watched_page(chromium, site, request.node.name)
    page = watched.page
    try:
        # Anonymous: the login page, which comes back to the page.
        page.goto("/staff/ops/")
        expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/staff/ops/$"))
        expect(page.locator(OPS_LINK)).to_have_count(0)

        log_in(watched, username, password)
        page.goto("/products/")
        expect(page.locator("nav.site-nav")).to_contain_text(username)
        expect(page.locator(OPS_LINK)).to_have_count(0)
        watched.screenshot("support-nav")

        for path in ("/staff/ops/", "/staff/ops.json"):
            response = page.goto(path)
            assert response is not None and response.status == 403, path
            expect(page.locator("body")).to_contain_text("ops.view_operations")
            watched.expect_bad_response(403, path)
        expect(page.locator("canvas")).to_have_count(0)
        watched.screenshot("support-403")
        watched.assert_clean()
    finally:
        context.close()
