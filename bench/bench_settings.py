"""Settings used only by `make bench` (bench/run.py): Storefront's own, plus bench-only URLs.

    DJANGO_SETTINGS_MODULE=bench_settings  (with bench/ on PYTHONPATH; bench/dataset.py sets both)

Nothing else changes: same middleware, database, cache and templates as the shop, so the
bench-only views below run through exactly the stack the shop's pages do. The shop itself
(storefront.settings, storefront.urls) has no such URLs.
"""

from storefront.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
