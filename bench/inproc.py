# ruff: noqa: E501, SIM108
"""In-process measurements for `make bench`, run by bench/run.py against one seeded database.

    DATABASE_URL=... python bench/inproc.py cursors 100 1000 ...   # signed ?after= cursors
    DATABASE_URL=... python bench/inproc.py timings --calls 30 --depths 1 100 1000

Prints one JSON object on stdout. `timings` measures, each as N calls (after 2 warm-up calls)
with p50/p95/mean in milliseconds:

- pagination: the old OFFSET way (Django Paginator: COUNT(*) + OFFSET/LIMIT of 24 rows) against
  the keyset way the listing uses now (one range query of 25 rows), at each depth;
- dashboard: the staff dashboard's four selectors as they are now (denormalized sales tables)
  against the request-time aggregation over orders and order lines they replaced, i.e.
  storefront/dashboards/selectors.py at commit 5d348d6^ (the commit before "Staff dashboard reads
  denormalized daily sales tables"), loaded from git into a throwaway module;
- listing: 24 products with `product.category` touched per row (N+1: 25 queries) against
  selectors.product_listing (one query with the category joined).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")

import django  # noqa: E402

django.setup()

from django.core.paginator import Paginator  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402

from storefront import pagination  # noqa: E402
from storefront.catalog import selectors as catalog_selectors  # noqa: E402
from storefront.catalog.models import Product  # noqa: E402
from storefront.dashboards import selectors as dashboard_selectors  # noqa: E402
from storefront.keyset import Keyset  # noqa: E402

PER_PAGE = 24
# The last version of the dashboard selectors that aggregated orders at request time.
LIVE_SELECTORS_REV = "5d348d6^"


def listing_queryset():
    return catalog_selectors.product_listing(sort="newest")


def cursors(depths: list[int]) -> dict:
    """A signed ?after= cursor leading to each page number (the last row of the page before)."""
    qs = listing_queryset()
    keyset = Keyset.of(qs)
    total = qs.count()
    out: dict[str, object] = {"products": total, "cursors": {}}
    for depth in depths:
        if depth < 2 or (depth - 1) * PER_PAGE >= total:
            continue
        row = qs[(depth - 1) * PER_PAGE - 1]
        out["cursors"][str(depth)] = pagination.encode_cursor(keyset, row, number=depth)
    return out


def timed(fn, calls: int) -> dict:
    for _ in range(2):
        fn()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, max(0, round(p / 100 * len(samples) + 0.5) - 1))]

    return {
        "calls": calls,
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "max_ms": round(samples[-1], 3),
    }


def count_queries(fn) -> int:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def live_dashboard_module() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{LIVE_SELECTORS_REV}:storefront/dashboards/selectors.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("bench_live_dashboard_selectors")
    module.__file__ = f"<git {LIVE_SELECTORS_REV}>"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


def staff_dashboard(module) -> None:
    module.revenue_per_day(days=30)
    module.top_products(days=30, limit=10)
    module.low_stock_products(limit=10)
    module.recent_orders(limit=10)


def timings(calls: int, depths: list[int]) -> dict:
    from storefront.orders.models import Order, OrderLine

    out: dict[str, object] = {
        "products": Product.objects.count(),
        "orders": Order.objects.count(),
        "order_lines": OrderLine.objects.count(),
    }

    # --- pagination: OFFSET (Paginator) vs keyset -----------------------------------------------
    qs = listing_queryset()
    keyset = Keyset.of(qs)
    total = qs.count()
    pages = {}
    for depth in depths:
        if (depth - 1) * PER_PAGE >= total:
            pages[str(depth)] = {"available": False, "reason": f"only {total:,} products"}
            continue

        def offset_page(depth=depth):
            # What Django's Paginator does for ?page=N: COUNT(*) then OFFSET/LIMIT.
            paginator = Paginator(listing_queryset(), PER_PAGE)
            return list(paginator.page(depth).object_list)

        values = None
        if depth > 1:
            values = keyset.values_from(keyset.position_of(qs[(depth - 1) * PER_PAGE - 1]))

        def keyset_page(values=values):
            return list(
                keyset.page_after(listing_queryset(), values, backwards=False)[: PER_PAGE + 1]
            )

        pages[str(depth)] = {
            "available": True,
            "offset": timed(offset_page, calls),
            "keyset": timed(keyset_page, calls),
        }
    out["pagination"] = pages

    # --- staff dashboard: denormalized vs request-time aggregation ------------------------------
    try:
        live = live_dashboard_module()
        out["dashboard"] = {
            "denormalized": timed(lambda: staff_dashboard(dashboard_selectors), calls),
            "request_time": timed(lambda: staff_dashboard(live), max(5, calls // 3)),
            "source_request_time": f"git show {LIVE_SELECTORS_REV}:storefront/dashboards/selectors.py",
        }
    except Exception as exc:
        out["dashboard"] = {"error": f"{type(exc).__name__}: {exc}"}

    # --- listing rows: N+1 vs selector ------------------------------------------------------------
    def n_plus_one():
        rows = list(
            Product.objects.filter(is_active=True).order_by("-created_at", "-id")[:PER_PAGE]
        )
        return [(p.name, p.category.name, p.stock) for p in rows]

    def selector():
        rows = list(listing_queryset()[:PER_PAGE])
        return [(p.name, p.category.name, p.stock) for p in rows]

    out["n_plus_one"] = {
        "n_plus_one": {**timed(n_plus_one, calls), "queries": count_queries(n_plus_one)},
        "selector": {**timed(selector, calls), "queries": count_queries(selector)},
    }
    reset_queries()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cursors")
    c.add_argument("depths", type=int, nargs="+")
    t = sub.add_parser("timings")
    t.add_argument("--calls", type=int, default=30)
    t.add_argument("--depths", type=int, nargs="+", default=[1, 100, 10_000])
    args = parser.parse_args()
    if args.command == "cursors":
        result = cursors(args.depths)
    else:
        result = timings(args.calls, args.depths)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
