"""/metrics: who may read it, and what the counters say after known requests (Django test client,
the multiprocess registry in this test process's own directory, see settings.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path
from prometheus_client.parser import text_string_to_metric_families

from storefront import caching
from tests.factories import ProductFactory, UserFactory
from tests.querycount import queries_for

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- Access --------------------------------------------------------------------------------


def test_local_client_reads_metrics(client: Client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200
    assert b"storefront_http_requests_total" in response.content
    assert response["Cache-Control"] == "no-store"


def test_remote_client_gets_404(client: Client, settings) -> None:
    settings.STOREFRONT_METRICS_TOKEN = TOKEN
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 404
    assert b"storefront_" not in response.content


def test_loopback_peer_with_proxy_headers_is_remote(client: Client) -> None:
    # A request nginx forwarded (not that nginx does for /metrics) is not a local client.
    response = client.get("/metrics", HTTP_X_REAL_IP="203.0.113.9")
    assert response.status_code == 404


def test_remote_client_with_token_reads_metrics(client: Client, settings) -> None:
    settings.STOREFRONT_METRICS_TOKEN = TOKEN
    client.get("/healthz")
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert response.status_code == 200
    assert b"storefront_http_requests_total" in response.content


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN])
def test_bad_token_gets_no_metrics(client: Client, settings, header: str) -> None:
    settings.STOREFRONT_METRICS_TOKEN = TOKEN
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=header)
    assert response.status_code == 404


def test_a_wrong_token_is_refused_even_from_loopback(client: Client, settings) -> None:
    settings.STOREFRONT_METRICS_TOKEN = TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert response.status_code == 404


def test_no_token_configured_means_local_only(client: Client, settings) -> None:
    settings.STOREFRONT_METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 404


def test_metrics_ignore_allowed_hosts_and_https_redirect(client: Client, settings) -> None:
    settings.ALLOWED_HOSTS = ["shop.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics", HTTP_HOST="10.0.0.7:8000").status_code == 200


def test_post_is_405(client: Client) -> None:
    assert client.post("/metrics").status_code == 405


# --- Values --------------------------------------------------------------------------------


def test_requests_latency_and_status_per_view(client: Client) -> None:
    ProductFactory(slug="blue-mug")
    before = scrape(client)
    for _ in range(3):
        assert client.get("/products/blue-mug/").status_code == 200
    assert client.get("/products/no-such-thing/").status_code == 404
    assert client.get("/no/such/path/").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    view = "catalog:product_detail"
    assert delta("storefront_http_requests_total", view=view, method="GET", status="200") == 3
    assert delta("storefront_http_requests_total", view=view, method="GET", status="404") == 1
    assert (
        delta("storefront_http_requests_total", view="unmatched", method="GET", status="404") == 1
    )
    assert delta("storefront_http_request_duration_seconds_count", view=view, method="GET") == 4
    assert delta("storefront_http_request_db_queries_count", view=view) == 4
    assert delta("storefront_http_request_db_seconds_count", view=view) == 4
    # Raw paths never become labels.
    assert not [k for k in after if "blue-mug" in str(k) or "no/such" in str(k)]


def test_db_queries_are_counted_exactly(client: Client) -> None:
    ProductFactory(slug="red-mug")
    user = UserFactory()
    client.force_login(user)  # signed in: no page cache, so every request queries
    name = "storefront_http_request_db_queries_sum"
    for _ in range(2):
        before = value(scrape(client), name, view="catalog:product_detail")
        queries = queries_for(client, "/products/red-mug/")
        after = value(scrape(client), name, view="catalog:product_detail")
        assert queries > 0
        assert after - before == queries


def test_page_cache_and_cache_namespaces(client: Client) -> None:
    ProductFactory()
    before = scrape(client)
    assert client.get("/products/")["X-Storefront-Cache"] == "MISS"
    assert client.get("/products/")["X-Storefront-Cache"] == "HIT"
    assert client.get("/products/?junk=1")["X-Storefront-Cache"] == "HIT"
    client.cookies["sessionid"] = "x"
    assert client.get("/products/")["X-Storefront-Cache"] == "BYPASS"
    client.cookies.clear()
    after = scrape(client)
    views = {
        dict(labels)["view"]
        for (name, labels) in after
        if name == "storefront_page_cache_responses_total"
    }
    view = next(v for v in views if v.endswith("product_list"))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("storefront_page_cache_responses_total", view=view, result="MISS") == 1
    assert delta("storefront_page_cache_responses_total", view=view, result="HIT") == 2
    assert delta("storefront_page_cache_responses_total", view=view, result="BYPASS") == 1
    # The page cache's lookups are cache lookups of its namespace: 1 miss, 2 hits.
    namespaces = {
        dict(labels)["namespace"]
        for (name, labels) in after
        if name == "storefront_cache_lookups_total"
    }
    assert namespaces
    hits = sum(
        delta("storefront_cache_lookups_total", namespace=n, result="hit") for n in namespaces
    )
    assert hits >= 2


def test_cache_lookups_per_namespace(client: Client) -> None:
    namespace = caching.NAMESPACES[0]
    before = scrape(client)
    key = caching.make_key(namespace, "test", "metrics")
    assert caching.get(namespace, key) is None
    caching.store(key, 42, 60)
    assert caching.get(namespace, key) == 42
    assert caching.get(namespace, key) == 42
    after = scrape(client)
    name = "storefront_cache_lookups_total"
    assert (
        value(after, name, namespace=namespace, result="hit")
        - value(before, name, namespace=namespace, result="hit")
        == 2
    )
    assert (
        value(after, name, namespace=namespace, result="miss")
        - value(before, name, namespace=namespace, result="miss")
        == 1
    )


def test_session_operations(client: Client) -> None:
    user = UserFactory(password="correct horse battery")
    before = scrape(client)
    client.force_login(user)  # writes a session without a request through the middleware
    assert client.get("/accounts/profile/").status_code in (200, 302)
    assert client.get("/accounts/profile/").status_code in (200, 302)
    after = scrape(client)
    name = "storefront_session_operations_total"
    assert value(after, name, operation="load") - value(before, name, operation="load") == 2
    assert value(after, name, operation="save") - value(before, name, operation="save") == 0


def test_process_and_state_gauges(client: Client) -> None:
    samples = scrape(client)
    rss = [
        v for (name, _), v in samples.items() if name == "storefront_process_resident_memory_bytes"
    ]
    cpu = [v for (name, _), v in samples.items() if name == "storefront_process_cpu_seconds"]
    assert rss and all(v > 10_000_000 for v in rss)
    assert cpu and all(v > 0 for v in cpu)
    assert value(samples, "storefront_confirmation_emails_owed") == 0
    assert value(samples, "storefront_imports_in_progress") == 0
    assert value(samples, "storefront_exports_in_progress") == 0


def _broken_view(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom")


urlpatterns = [path("broken/", _broken_view, name="broken")]


@pytest.mark.urls("storefront.ops.tests.test_metrics")
def test_exceptions_are_counted_per_view() -> None:
    client = Client(raise_request_exception=False)
    before = scrape(client)
    assert client.get("/broken/").status_code == 500
    assert client.get("/broken/").status_code == 500
    after = scrape(client)
    name = "storefront_http_exceptions_total"
    labels = {"view": "broken", "exception": "RuntimeError"}
    assert value(after, name, **labels) - value(before, name, **labels) == 2
    requests = {"view": "broken", "method": "GET", "status": "500"}
    assert (
        value(after, "storefront_http_requests_total", **requests)
        - value(before, "storefront_http_requests_total", **requests)
        == 2
    )
