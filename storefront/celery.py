"""The Celery application: configured from Django settings (the CELERY_* names).

Workers: `celery -A storefront worker`; the periodic schedule: `celery -A storefront beat`.
Without a broker (embedded mode) CELERY_TASK_ALWAYS_EAGER runs each task in the calling process.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")

app = Celery("storefront")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
