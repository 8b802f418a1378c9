"""Run by test_profiling.py in a child pytest with STOREFRONT_SILK=1 and
STOREFRONT_SILK_PERCENT=100: silk records requests, shows them to staff only, prunes old ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from silk.config import SilkyConfig
from silk.models import Request, SQLQuery

from storefront.ops.tasks import prune_silk
from tests.factories import ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_sampled_request_is_recorded_with_its_queries(client) -> None:
    assert settings.SILKY_INTERCEPT_PERCENT == 100
    ProductFactory(name="Walnut Desk Lamp")

    assert client.get("/products/").status_code == 200

    recorded = Request.objects.get(path="/products/")
    assert recorded.response.status_code == 200
    assert SQLQuery.objects.filter(request=recorded, query__contains="catalog_product").exists()
    assert recorded.body == ""  # bodies are never stored


def test_an_unsampled_request_is_not_recorded(client) -> None:
    config = SilkyConfig()
    config.attrs["SILKY_INTERCEPT_PERCENT"] = 0
    try:
        assert client.get("/products/").status_code == 200
    finally:
        config.attrs["SILKY_INTERCEPT_PERCENT"] = 100
    assert not Request.objects.filter(path="/products/").exists()


def test_silk_pages_are_for_staff_only(client) -> None:
    anonymous = client.get("/silk/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/?next=/silk/")

    client.force_login(UserFactory())
    assert client.get("/silk/").status_code == 403
    assert client.get("/silk/requests/").status_code == 403

    client.force_login(StaffFactory())
    assert client.get("/silk/").status_code == 200
    assert client.get("/silk/requests/").status_code == 200


def test_prune_deletes_requests_older_than_the_max_age() -> None:
    now = timezone.now()
    old = Request.objects.create(path="/old/", method="GET", start_time=now - timedelta(hours=25))
    SQLQuery.objects.create(request=old, query="SELECT 1")
    Request.objects.create(path="/recent/", method="GET", start_time=now - timedelta(hours=23))

    assert settings.STOREFRONT_SILK_MAX_AGE_HOURS == 24
    assert settings.CELERY_BEAT_SCHEDULE["prune-silk"]["task"] == "storefront.ops.tasks.prune_silk"
    assert prune_silk.delay().get() == 1

    assert list(Request.objects.values_list("path", flat=True)) == ["/recent/"]
    assert not SQLQuery.objects.exists()
    assert prune_silk.delay().get() == 0  # idempotent
