"""Housekeeping tasks, run by a real Celery worker through the Redis broker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from storefront.ops.tasks import clear_expired_sessions


def _session(key: str, *, expires_in: timedelta) -> None:
    Session.objects.create(
        session_key=key, session_data="e30:", expire_date=timezone.now() + expires_in
    )


@pytest.mark.django_db
def test_clear_expired_sessions_eagerly_keeps_live_sessions() -> None:
    _session("expired" * 4, expires_in=timedelta(days=-1))
    _session("live" * 8, expires_in=timedelta(days=1))

    clear_expired_sessions.delay()  # the test settings run tasks eagerly

    assert list(Session.objects.values_list("session_key", flat=True)) == ["live" * 8]


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_task_sent_through_the_broker(celery_worker) -> None:
    _session("expired" * 4, expires_in=timedelta(days=-1))
    _session("live" * 8, expires_in=timedelta(days=1))

    clear_expired_sessions.delay()

    deadline = time.monotonic() + 20
    while Session.objects.count() != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(Session.objects.values_list("session_key", flat=True)) == ["live" * 8]
    assert "storefront.ops.tasks.clear_expired_sessions" in celery_worker.log()
