"""The read-replica router's rules, without servers (tests/scaleout/test_replicas.py runs them
against a real streaming replica)."""

from __future__ import annotations

import time

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from storefront import db_router
from storefront.accounts.models import User
from storefront.catalog.models import Product
from storefront.db_router import PIN_COOKIE, ReplicaReadsMiddleware, ReplicaRouter
from storefront.orders.models import Order


@pytest.fixture
def replicas(settings, monkeypatch):
    """One replica configured; `usable_replica` answers "replica_0" (its health is tested
    live)."""
    settings.DATABASE_REPLICAS = ["replica_0"]
    settings.DATABASE_REPLICA_PIN_SECONDS = 5
    monkeypatch.setattr(db_router, "usable_replica", lambda: "replica_0")


def _routes(request: HttpRequest, *, status: int = 200, view=None) -> tuple[dict, HttpResponse]:
    """What the router decides for a catalog model, an order and a user while serving
    `request` through the middleware; and the response."""
    seen: dict[str, str | None] = {}
    router = ReplicaRouter()

    def view_(req: HttpRequest) -> HttpResponse:
        seen["product"] = router.db_for_read(Product)
        seen["order"] = router.db_for_read(Order)
        seen["user"] = router.db_for_read(User)
        seen["write"] = router.db_for_write(Product)
        return HttpResponse(status=status)

    response = ReplicaReadsMiddleware(view or view_)(request)
    return seen, response


def test_a_safe_request_reads_the_catalog_from_a_replica_and_the_rest_from_the_primary(replicas):
    seen, response = _routes(RequestFactory().get("/products/"))
    assert seen == {
        "product": "replica_0",
        "order": "default",
        "user": "default",
        "write": "default",
    }
    assert PIN_COOKIE not in response.cookies


def test_a_dashboard_view_reads_everything_from_a_replica(replicas):
    router = ReplicaRouter()
    seen = {}

    @db_router.reads_from_replica
    def dashboard(request: HttpRequest) -> HttpResponse:
        seen["order"] = router.db_for_read(Order)
        seen["user"] = router.db_for_read(User)
        return HttpResponse()

    ReplicaReadsMiddleware(dashboard)(RequestFactory().get("/staff/dashboard/"))
    assert seen == {"order": "replica_0", "user": "replica_0"}


def test_a_write_is_served_by_the_primary_and_pins_the_visitor(replicas):
    seen, response = _routes(RequestFactory().post("/cart/add/1/"), status=302)
    assert seen["product"] == "default"
    cookie = response.cookies[PIN_COOKIE]
    assert cookie["max-age"] == 5 and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert time.time() + 4 <= float(cookie.value) <= time.time() + 6


def test_a_pinned_visitor_reads_from_the_primary_until_the_pin_expires(replicas):
    request = RequestFactory().get("/products/")
    request.COOKIES[PIN_COOKIE] = f"{time.time() + 3:.0f}"
    assert _routes(request)[0]["product"] == "default"
    request = RequestFactory().get("/products/")
    request.COOKIES[PIN_COOKIE] = f"{time.time() - 1:.0f}"
    assert _routes(request)[0]["product"] == "replica_0"
    request = RequestFactory().get("/products/")
    request.COOKIES[PIN_COOKIE] = "not a number"
    assert _routes(request)[0]["product"] == "replica_0"


def test_a_failed_write_does_not_pin(replicas):
    _, response = _routes(RequestFactory().post("/checkout/"), status=503)
    assert PIN_COOKIE not in response.cookies


def test_outside_a_request_everything_reads_from_the_primary(replicas):
    """Celery tasks, commands and the shell write and then read what they wrote."""
    router = ReplicaRouter()
    assert router.db_for_read(Product) == "default"
    with db_router.replica_reads():
        assert router.db_for_read(Order) == "default"


def test_no_replica_answering_means_the_primary(settings, monkeypatch):
    settings.DATABASE_REPLICAS = ["replica_0"]
    monkeypatch.setattr(db_router, "usable_replica", lambda: None)
    assert _routes(RequestFactory().get("/products/"))[0]["product"] == "default"


def test_without_replicas_the_middleware_sets_nothing(settings):
    settings.DATABASE_REPLICAS = []
    _, response = _routes(RequestFactory().post("/cart/add/1/"), status=302)
    assert PIN_COOKIE not in response.cookies


def test_migrations_only_run_on_the_primary():
    router = ReplicaRouter()
    assert router.allow_migrate("default", "catalog") is True
    assert router.allow_migrate("replica_0", "catalog") is False


def test_settings_build_one_alias_per_replica_url_with_pooled_safe_options(tmp_path):
    """DATABASE_REPLICA_URLS and PGBOUNCER_URL as settings.py reads them (a fresh process)."""
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "STOREFRONT_ENV": "test",
        "DATABASE_URL": "postgres://app@db.internal:5432/shop",
        "PGBOUNCER_URL": "postgres://app@pgbouncer.internal:6432/shop",
        "DATABASE_REPLICA_URLS": "postgres://app@r1.internal:5432/shop,postgres://app@r2.internal:5432/shop",
    }
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'dbs': s.DATABASES, 'replicas': s.DATABASE_REPLICAS, "
        "'direct': s.DATABASE_DIRECT_URL, 'routers': s.DATABASE_ROUTERS}, default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "storefront.settings"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    dbs = found["dbs"]
    assert dbs["default"]["HOST"] == "pgbouncer.internal" and dbs["default"]["PORT"] == 6432
    assert dbs["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert dbs["default"]["OPTIONS"] == {"prepare_threshold": None}
    assert found["direct"] == "postgres://app@db.internal:5432/shop"
    assert found["replicas"] == ["replica_0", "replica_1"]
    assert [dbs[a]["HOST"] for a in found["replicas"]] == ["r1.internal", "r2.internal"]
    assert dbs["replica_1"]["OPTIONS"] == {"prepare_threshold": None, "connect_timeout": 2}
    assert dbs["replica_0"]["CONN_HEALTH_CHECKS"] is True
    assert found["routers"] == ["storefront.db_router.ReplicaRouter"]
