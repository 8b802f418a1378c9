"""/metrics of gunicorn with two workers that recycle during the test (GUNICORN_MAX_REQUESTS=4):
a known number of requests, spread over several worker processes, is counted exactly, because
every worker writes to the shared multiprocess directory and dead workers' counters stay."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import PROCESSES, Server, app_env, serve_gunicorn, storefront_command
from tests.stack.conftest import throwaway_database

pytestmark = pytest.mark.stack

N = 40  # requests to the measured view
MAX_REQUESTS = 4  # per worker, then gunicorn replaces it
TOKEN = "stack-metrics-token"


@pytest.fixture(scope="module")
def recycling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("metrics-var")
    with throwaway_database(tmp_path_factory, "metrics") as database_url:
        env = app_env(
            database_url=database_url,
            var_dir=var_dir,
            static_root=var_dir / "static",
            redis_url=None,
            cache_prefix=f"sfmetricsstack{var_dir.name}",
            extra={"STOREFRONT_METRICS_TOKEN": TOKEN},
        )
        storefront_command(["migrate", "--noinput"], env, timeout=300)
        PROCESSES.install()
        server = serve_gunicorn(
            env,
            var_dir / "gunicorn.log",
            workers=2,
            extra_env={
                "GUNICORN_MAX_REQUESTS": str(MAX_REQUESTS),
                "GUNICORN_MAX_REQUESTS_JITTER": "0",
            },
        )
        try:
            yield server
        finally:
            server.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_exact_counts_across_recycled_workers(recycling_server: Server) -> None:
    url = recycling_server.url
    pids: set[int] = set()
    for i in range(N):
        status, _ = get(f"{url}/api/products/")
        assert status == 200
        if i % 2 == 0:
            pids.update(recycling_server.pids())
    pids.update(recycling_server.pids())
    # Two workers, each replaced after MAX_REQUESTS requests: many processes served the N.
    assert len(pids) >= 2 * 2, pids

    # The /metrics request counts toward MAX_REQUESTS too: the worker answering it may be
    # replaced right after, so "live" means running just before or just after that request.
    before = set(recycling_server.pids())
    status, text = get(f"{url}/metrics")  # from loopback: allowed
    after = set(recycling_server.pids())
    assert status == 200
    found = samples(text)
    view = frozenset({("view", "api-product-list"), ("method", "GET"), ("status", "200")})
    assert found[("storefront_http_requests_total", view)] == N
    latency = frozenset({("view", "api-product-list"), ("method", "GET")})
    assert found[("storefront_http_request_duration_seconds_count", latency)] == N
    db = frozenset({("view", "api-product-list")})
    assert found[("storefront_http_request_db_queries_count", db)] == N
    # Only live workers report memory: at most the two running now, never the dead ones.
    live = {
        dict(labels)["pid"]
        for (name, labels) in found
        if name == "storefront_process_resident_memory_bytes"
    }
    assert 1 <= len(live) <= 2
    dead = pids - before - after
    assert dead, "no worker was replaced before /metrics: the test proves nothing"
    assert {int(p) for p in live} <= before | after
    assert not {int(p) for p in live} & dead


def test_metrics_answer_a_token_and_count_requests_from_every_worker(
    recycling_server: Server,
) -> None:
    url = recycling_server.url
    _, text = get(f"{url}/metrics")
    key = ("storefront_http_requests_total",
           frozenset({("view", "healthz"), ("method", "GET"), ("status", "200")}))  # fmt: skip
    before = samples(text).get(key, 0)
    for _ in range(N):
        assert get(f"{url}/healthz")[0] == 200
    status, text = get(f"{url}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert samples(text)[key] - before == N
    assert get(f"{url}/metrics", {"Authorization": "Bearer wrong"})[0] == 404
