"""The test harness's Celery worker (tests/celery_worker.py) with its defaults."""

from __future__ import annotations

import time
from pathlib import Path

import environ
import pytest

from storefront.orders.models import EmailDelivery
from storefront.orders.notifications import order_confirmation_key
from storefront.orders.services import OrderItem, place_order
from tests.celery_worker import running_worker
from tests.factories import ProductFactory, UserFactory


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_default_worker_starts_and_sends_email_into_memory(
    require_postgres, require_redis, tmp_path: Path
) -> None:
    """No email_url given: the worker's settings parse the default EMAIL_URL (Django's locmem
    backend), so an order's confirmation is sent, and kept in the worker's memory."""
    with running_worker(tmp_path / "celery-worker.log") as worker:
        config = environ.Env.email_url_config(worker.env["EMAIL_URL"])
        assert config["EMAIL_BACKEND"] == "django.core.mail.backends.locmem.EmailBackend"
        order = place_order(user=UserFactory(), items=[OrderItem(ProductFactory(stock=50).id, 1)])
        key = order_confirmation_key(order.id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            delivery = EmailDelivery.objects.get(idempotency_key=key)
            if delivery.status == "sent":
                break
            time.sleep(0.1)
        assert (delivery.status, delivery.attempts) == ("sent", 1), worker.log()
        assert delivery.recipients == [order.user.email]
