"""pytest plugin registered through the `pytest11` entry point in pyproject.toml.

pytest imports entry-point plugins before pytest-django reads the Django settings, which a
root conftest.py would be too late for: this is where the suite selects the test settings.
"""

import os

os.environ.setdefault("STOREFRONT_ENV", "test")
# A queue of its own for this test run, so tasks sent by the tests reach only the Celery worker
# the tests start (tests/celery_worker.py), even when other runs share the Redis broker.
os.environ.setdefault("CELERY_QUEUE", f"storefront-test-{os.getpid()}")
