"""Where an uncached page's time goes: pyinstrument call trees of the listing and a product page.

    DATABASE_URL=postgres://...  .venv/bin/python bench/profile_pages.py [--requests 1000]

Runs in-process through Django's full middleware stack (the test client, as gunicorn would call
the WSGI handler) with the page cache storing nothing (STOREFRONT_CACHE_TTL_PAGES=0) and a
cache key prefix of its own, like the bench's uncached stack; the inner caches (rows, cards,
menus, the product) keep their TTLs and are warmed first. Each page is requested `--requests`
times under one sampling profiler, so the tree shows the steady state rather than one noisy
request. Writes bench/profiles/<page>.txt (the call tree as text, headed by the CPU time per
request); with --html DIR also pyinstrument's interactive view (tens of MB: not committed).
Needs a seeded database (`storefront seed`); the bench's own figures stay in bench/REPORT.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
os.environ["STOREFRONT_CACHE_TTL_PAGES"] = "0"
# A prefix of its own: pages another process stored under the usual prefix would be found.
os.environ["STOREFRONT_CACHE_KEY_PREFIX"] = f"sf-profile-{os.getpid()}"

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402
from pyinstrument import Profiler  # noqa: E402

from storefront.catalog import selectors  # noqa: E402

OUT_DIR = BENCH_DIR / "profiles"


def profile(client: Client, name: str, url: str, requests: int, html: Path | None) -> dict:
    """`requests` GETs of `url` under pyinstrument; writes the text and HTML trees."""
    for _ in range(30):  # warm: rows, cards, menus and the product in the cache
        response = client.get(url)
    if response.status_code != 200 or response.get("X-Storefront-Cache") != "MISS":
        raise SystemExit(f"{url}: {response.status_code} {response.get('X-Storefront-Cache')}")
    profiler = Profiler(interval=0.0002)
    cpu = time.process_time()
    profiler.start()
    for _ in range(requests):
        client.get(url)
    profiler.stop()
    per_request_ms = (time.process_time() - cpu) / requests * 1000
    header = (
        f"{name}: GET {url}, {requests} requests in-process, page cache storing nothing; "
        f"{per_request_ms:.2f} ms CPU per request under the profiler (sampling every 0.2 ms "
        "adds to it; compare the shares, not the absolute figures)\n\n"
    )
    tree = profiler.output_text(unicode=True, color=False, show_all=False, timeline=False)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / f"{name}.txt").write_text(header + tree)
    if html is not None:
        html.mkdir(parents=True, exist_ok=True)
        (html / f"{name}.html").write_text(profiler.output_html())
    return {"page": name, "url": url, "requests": requests, "cpu_ms": round(per_request_ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--html", type=Path, help="also write the HTML views into this directory")
    args = parser.parse_args()
    product = selectors.product_listing(sort="newest").first()
    if product is None:
        raise SystemExit("no products: seed the database first (storefront seed)")
    client = Client(HTTP_HOST="127.0.0.1")
    for name, url in (
        ("listing-uncached", "/products/"),
        ("product-uncached", product.get_absolute_url()),
    ):
        print(profile(client, name, url, args.requests, args.html))


if __name__ == "__main__":
    main()
