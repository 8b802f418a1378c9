"""Task metrics recorded by a real Celery worker (prefork) are read by /metrics of the web side:
both write to the same PROMETHEUS_MULTIPROC_DIR (the worker inherits this test process's)."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from storefront.catalog.tasks import import_products
from storefront.ops.tasks import clear_expired_sessions
from storefront.ops.tests.test_metrics import scrape, value

SESSIONS_TASK = "storefront.ops.tasks.clear_expired_sessions"
IMPORT_TASK = "storefront.catalog.tasks.import_products"


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
