"""pytest plugin registered through the `pytest11` entry point in pyproject.toml.

pytest imports entry-point plugins before pytest-django reads the Django settings, which a
root conftest.py would be too late for: this is where the suite selects the test settings.
"""

import os

os.environ.setdefault("STOREFRONT_ENV", "test")
