"""Celery task metrics (storefront/ops/metrics.py), recorded in the worker's pool processes.

Connected when storefront/celery.py imports this module, so every worker records them into the
same PROMETHEUS_MULTIPROC_DIR as the web processes of its host (docs/monitoring.md).
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals

_started: dict[str, float] = {}


def _name(sender: Any) -> str:
    return getattr(sender, "name", None) or "unknown"


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(sender: Any = None, task_id: str | None = None, state: str | None = None,
                   **_: Any) -> None:  # fmt: skip
    from storefront.ops import metrics

    started = _started.pop(task_id or "", None)
    name = _name(sender)
    if started is not None:
        metrics.celery_task_duration.labels(name).observe(time.perf_counter() - started)
    outcome = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}.get(state or "")
    if outcome:
        metrics.celery_tasks.labels(name, outcome).inc()
    metrics.sample_process("worker")


@signals.worker_init.connect
def _worker_starts(**_: Any) -> None:
    """The worker's main process, before its pool forks: this worker's own group directory,
    emptied (a restart starts its counters over; the web groups' files are left alone)."""
    from pathlib import Path

    from django.conf import settings

    from storefront.ops.metrics_dirs import group_name, use_group_dir

    if settings.PROMETHEUS_MULTIPROC_DIR_GIVEN:  # a parent's directory: it owns emptying it
        return
    use_group_dir(Path(settings.STOREFRONT_METRICS_DIR), group_name("worker"), wipe=True)


@signals.worker_process_shutdown.connect
def _pool_process_exits(pid: int | None = None, **_: Any) -> None:
    """A pool child exits (max-tasks-per-child, shutdown): its live gauges go away."""
    import os

    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())
