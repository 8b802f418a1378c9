"""A short scripted browse, then the cache hit ratio per namespace (README "Caching").

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/cache_browse.py [--visitors 20]

Runs in-process through Django's test client against the configured (seeded) database and
cache: each visitor is a fresh anonymous browser that opens the home page, two more listing
pages, a category, a search, four product pages and the login page; every fifth visitor logs
in as the demo customer and opens the dashboard. Counters are reset first; the cache is not
cleared, so run `storefront cache clear` before for a cold start.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
# Plain static storage: the pages render without a collectstatic manifest.
os.environ.setdefault(
    "STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage"
)

import django

django.setup()

from django.http import HttpRequest  # noqa: E402
from django.test import Client  # noqa: E402

from storefront import caching  # noqa: E402
from storefront.catalog.models import Category, Product  # noqa: E402
from storefront.seeding import DEMO_CUSTOMER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rand = random.Random(args.seed)
    slugs = list(
        Product.objects.active().order_by("-created_at").values_list("slug", flat=True)[:40]
    )
    categories = list(Category.objects.values_list("slug", flat=True))
    if not slugs:
        raise SystemExit("no products: run `storefront seed` first")

    caching.reset_stats()
    requests, started = 0, time.perf_counter()
    for visitor in range(args.visitors):
        client = Client(HTTP_HOST="127.0.0.1")
        urls = ["/", "/products/?page=2", "/products/?sort=price_asc"]
        urls.append(f"/products/?category={rand.choice(categories)}")
        urls.append("/products/?q=" + rand.choice(["lamp", "desk", "chair", "mug"]))
        urls += [f"/products/{rand.choice(slugs[:12])}/" for _ in range(4)]
        urls.append("/accounts/login/")
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            requests += 1
        if visitor % 5 == 4:
            # A request: the login lockout (django-axes) requires one of every authenticate().
            client.login(
                request=HttpRequest(), username=DEMO_CUSTOMER[0], password=DEMO_CUSTOMER[1]
            )
            for url in ("/dashboard/", "/dashboard/", "/products/"):
                assert client.get(url).status_code == 200
                requests += 1
    elapsed = time.perf_counter() - started

    print(f"{requests} requests by {args.visitors} visitors in {elapsed:.1f} s")
    print(f"{'namespace':12} {'hits':>6} {'misses':>7} {'hit ratio':>10}")
    total_hits = total_misses = 0
    for namespace, row in caching.stats().items():
        total_hits += row["hits"]
        total_misses += row["misses"]
        print(f"{namespace:12} {row['hits']:>6} {row['misses']:>7} {row['hit_ratio']:>10.1%}")
    total = total_hits + total_misses
    print(f"{'all':12} {total_hits:>6} {total_misses:>7} {total_hits / max(total, 1):>10.1%}")


if __name__ == "__main__":
    main()
