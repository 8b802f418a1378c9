"""Task metrics recorded by a real Celery worker (prefork) are read by /metrics of the web side:
both write to the same PROMETHEUS_MULTIPROC_DIR (the worker inherits this test process's)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope, Session
from django.test import Client

from harness import free_port
from harness.smtp import SmtpSink, serving
from storefront.catalog.tasks import import_products
from storefront.ops.tasks import clear_expired_sessions
from storefront.ops.tests.test_metrics import scrape, value
from storefront.orders.models import EmailDelivery
from storefront.orders.notifications import order_confirmation_key
from storefront.orders.services import OrderItem, place_order
from tests.celery_worker import running_worker
from tests.factories import ProductFactory, UserFactory

SESSIONS_TASK = "storefront.ops.tasks.clear_expired_sessions"
IMPORT_TASK = "storefront.catalog.tasks.import_products"
CONFIRMATION_TASK = "storefront.orders.tasks.send_order_confirmation"
TASKS = "storefront_celery_tasks_total"
DURATIONS = "storefront_celery_task_duration_seconds_count"


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_worker_task_counts_durations_and_failures(celery_worker, client: Client) -> None:
    name = "storefront_celery_tasks_total"
    before = scrape(client)
    clear_expired_sessions.delay()
    clear_expired_sessions.delay()
    import_products.delay("not-a-number")  # fails in the worker: no such import id

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = scrape(client)
        done = value(after, name, task=SESSIONS_TASK, outcome="succeeded") - value(
            before, name, task=SESSIONS_TASK, outcome="succeeded"
        )
        failed = value(after, name, task=IMPORT_TASK, outcome="failed") - value(
            before, name, task=IMPORT_TASK, outcome="failed"
        )
        if done >= 2 and failed >= 1:
            break
        time.sleep(0.2)
    assert (done, failed) == (2, 1), celery_worker.log()
    duration = "storefront_celery_task_duration_seconds_count"
    assert (
        value(after, duration, task=SESSIONS_TASK) - value(before, duration, task=SESSIONS_TASK)
        == 2
    )
    assert value(after, duration, task=IMPORT_TASK) - value(before, duration, task=IMPORT_TASK) == 1
    assert value(after, name, task=IMPORT_TASK, outcome="succeeded") == value(
        before, name, task=IMPORT_TASK, outcome="succeeded"
    )
    # The worker's pool process is alive and reports its memory under kind="worker".
    workers = [
        v
        for (metric, labels), v in after.items()
        if metric == "storefront_process_resident_memory_bytes" and ("kind", "worker") in labels
    ]
    assert workers and all(v > 10_000_000 for v in workers)
    # The queue was drained: nothing waits in this run's queue.
    assert (
        value(after, "storefront_celery_queue_length", queue=celery_worker.env["CELERY_QUEUE"]) == 0
    )


# --- Retries: the order confirmation email while SMTP fails ---------------------------------


@dataclass
class BusySmtpSink(SmtpSink):
    """An SMTP server that answers 451 (try again later) to the first `busy_for` messages."""

    busy_for: int = 0

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.busy_for > 0:
                self.busy_for -= 1
                return "451 4.3.2 System busy, try again later"
        return await super().handle_DATA(server, session, envelope)


def _outcomes(before: dict, after: dict, task: str) -> dict[str, float]:
    counts = {
        outcome: value(after, TASKS, task=task, outcome=outcome)
        - value(before, TASKS, task=task, outcome=outcome)
        for outcome in ("succeeded", "failed", "retried")
    }
    counts["runs"] = value(after, DURATIONS, task=task) - value(before, DURATIONS, task=task)
    return counts


def _wait_for_outcomes(client: Client, before: dict, task: str, **expected: float) -> dict:
    """Scrape until the task's outcome counters reach `expected` (or 60 s passed)."""
    deadline = time.monotonic() + 60
    while True:
        after = scrape(client)
        counts = _outcomes(before, after, task)
        if all(counts[k] >= v for k, v in expected.items()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_each_smtp_refusal_counts_one_retry(
    require_postgres, require_redis, client: Client, settings, tmp_path: Path
) -> None:
    """The SMTP server answers 451 twice: two retries (autoretry on SMTPException), then the
    third run sends the email. Exact: 2 retried, 1 succeeded, 0 failed, 3 runs timed."""
    with (
        serving(BusySmtpSink(port=free_port(), busy_for=2)) as sink,
        running_worker(
            tmp_path / "celery-worker.log", email_url=sink.url, media_root=settings.MEDIA_ROOT
        ) as worker,
    ):
        before = scrape(client)
        order = place_order(user=UserFactory(), items=[OrderItem(ProductFactory(stock=50).id, 1)])
        # One pool process runs the tries one after another: once the success is counted,
        # every earlier try (and its retry) is too.
        counts = _wait_for_outcomes(client, before, CONFIRMATION_TASK, succeeded=1)
        assert sink.wait_for(1) and sink.busy_for == 0, worker.log()
    assert counts == {"succeeded": 1, "failed": 0, "retried": 2, "runs": 3}, worker.log()
    delivery = EmailDelivery.objects.get(idempotency_key=order_confirmation_key(order.id))
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert len(sink.received()) == 1


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_smtp_unreachable_counts_one_retry_per_failed_attempt(
    require_postgres, require_redis, client: Client, settings, tmp_path: Path
) -> None:
    """Nothing listens on the SMTP port (connection refused, an OSError): the task retries
    with backoff until the server comes up. Every failed run is one `retried`, no `failed`:
    retried == attempts - 1 as the delivery row counts them."""
    port = free_port()
    with running_worker(
        tmp_path / "celery-worker.log",
        email_url=f"smtp://127.0.0.1:{port}",
        media_root=settings.MEDIA_ROOT,
    ) as worker:
        before = scrape(client)
        order = place_order(user=UserFactory(), items=[OrderItem(ProductFactory(stock=50).id, 1)])
        counts = _wait_for_outcomes(client, before, CONFIRMATION_TASK, retried=1)
        assert counts["retried"] >= 1 and counts["succeeded"] == 0, worker.log()
        delivery = EmailDelivery.objects.get(idempotency_key=order_confirmation_key(order.id))
        assert "ConnectionRefusedError" in delivery.last_error, worker.log()

        with serving(SmtpSink(port=port)) as sink:  # the mail server is back
            counts = _wait_for_outcomes(client, before, CONFIRMATION_TASK, succeeded=1)
            assert len(sink.wait_for(1)) == 1, worker.log()
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts >= 2
    assert counts == {
        "succeeded": 1,
        "failed": 0,
        "retried": delivery.attempts - 1,
        "runs": delivery.attempts,
    }, worker.log()
