from pathlib import Path

import pytest
from django.test import Client

from storefront.ops import health
from tests.fresh_python import PRODUCTION, run_argv

pytestmark = pytest.mark.django_db


def test_healthz_touches_nothing(client: Client, django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert "no-cache" in response["Cache-Control"]


def test_probes_answer_any_host_header(client: Client, settings) -> None:
    settings.ALLOWED_HOSTS = ["shop.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    # Everything else still validates the host.
    assert client.get("/products/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_readyz_reports_every_dependency(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_is_503_naming_the_failed_dependency(client: Client, settings) -> None:
    # A real Redis client pointed at a port where nothing listens.
    settings.STOREFRONT_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["failed"] == ["broker"]
    assert "ConnectionError" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_readyz_reports_a_broken_cache(client: Client, settings) -> None:
    # A cache that accepts writes and forgets them, as a django-redis cache does when it
    # ignores the errors of an unreachable Redis.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    body = client.get("/readyz").json()
    assert body["failed"] == ["cache"]
    assert "did not return the value" in body["checks"]["cache"]["detail"]


def test_broker_check_without_broker_says_so(settings) -> None:
    settings.STOREFRONT_BROKER_URL = ""
    assert health.check_broker() == "not configured (tasks run in-process)"


def test_check_deploy_is_clean_with_production_env(tmp_path: Path) -> None:
    done = run_argv(
        tmp_path,
        ["-m", "storefront", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_client_address_comes_from_the_proxy_header_only_when_configured(rf, settings) -> None:
    from django.http import HttpResponse

    from storefront.ops.middleware import ProxyClientAddressMiddleware

    def seen(request) -> HttpResponse:
        return HttpResponse(request.META["REMOTE_ADDR"])

    request = rf.get("/", HTTP_X_REAL_IP="203.0.113.9", HTTP_X_FORWARDED_FOR="6.6.6.6")
    settings.STOREFRONT_PROXY_CLIENT_IP_HEADER = ""
    assert ProxyClientAddressMiddleware(seen)(request).content == b"127.0.0.1"
    settings.STOREFRONT_PROXY_CLIENT_IP_HEADER = "X-Real-IP"
    assert ProxyClientAddressMiddleware(seen)(request).content == b"203.0.113.9"


def test_readyz_hides_failure_details_from_remote_clients(client: Client, settings, caplog) -> None:
    settings.STOREFRONT_BROKER_URL = "redis://127.0.0.1:1/0"
    with caplog.at_level("WARNING", logger="storefront.ops.health"):
        response = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert all("detail" not in check for check in body["checks"].values())
    assert b"ConnectionError" not in response.content and b"127.0.0.1" not in response.content
    # The operator still finds the reason, in the log.
    assert "readiness check broker failed: ConnectionError" in caplog.text


@pytest.mark.parametrize(
    ("header_setting", "meta", "detailed"),
    [
        # A shell on the server, straight to gunicorn.
        ("", {"REMOTE_ADDR": "127.0.0.1"}, True),
        ("", {"REMOTE_ADDR": "::1"}, True),
        # Through nginx without the client-address header configured: every client's peer is
        # loopback (or a unix socket), so the proxy's headers make it a remote client.
        ("", {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "203.0.113.9"}, False),
        ("", {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}, False),
        ("", {"REMOTE_ADDR": ""}, False),
        # With it configured: the address nginx reports decides.
        ("X-Real-IP", {"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "127.0.0.1"}, True),
        ("X-Real-IP", {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "203.0.113.9"}, False),
    ],
)
def test_readyz_details_only_for_clients_on_this_machine(
    client: Client, settings, header_setting: str, meta: dict[str, str], detailed: bool
) -> None:
    settings.STOREFRONT_PROXY_CLIENT_IP_HEADER = header_setting
    settings.STOREFRONT_BROKER_URL = "redis://127.0.0.1:1/0"
    body = client.get("/readyz", **meta).json()
    assert body["failed"] == ["broker"]
    broker = body["checks"]["broker"]
    assert ("ConnectionError" in broker.get("detail", "")) is detailed, broker
    assert ("detail" in body["checks"]["database"]) is detailed
