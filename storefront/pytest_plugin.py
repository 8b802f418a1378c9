"""pytest plugin registered through the `pytest11` entry point in pyproject.toml.

pytest imports entry-point plugins before pytest-django reads the Django settings, which a
root conftest.py would be too late for: this is where the suite selects the test settings.
"""

import os

os.environ.setdefault("STOREFRONT_ENV", "test")
# A Celery queue and cache key prefix of this test process's own (set, not defaulted: xdist
# workers inherit the controller's environment), so tasks sent by the tests reach only the
# worker the tests start (tests/celery_worker.py, which inherits both), and one run's cache
# invalidations never touch another run's entries, even when they share Redis.
os.environ["CELERY_QUEUE"] = f"storefront-test-{os.getpid()}"
os.environ["STOREFRONT_CACHE_KEY_PREFIX"] = f"sf-test-{os.getpid()}"
