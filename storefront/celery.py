"""The Celery application: configured from Django settings (the CELERY_* names).

Workers: `celery -A storefront worker`; the periodic schedule: `celery -A storefront beat`.
Without a broker (embedded mode) CELERY_TASK_ALWAYS_EAGER runs each task in the calling process.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

# Task counts, durations, failures and retries for /metrics (task_prerun, task_postrun).
import storefront.ops.metrics_celery

# Task messages carry the request id of the request that sent them: importing the module
# connects its task signal receivers (before_task_publish, task_prerun, task_postrun).
import storefront.ops.request_id  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")

app = Celery("storefront")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Worker and beat log through Django's LOGGING (LOG_FORMAT: JSON or text lines), not
    Celery's own formatters, so their lines look like the app's and carry the request id."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
