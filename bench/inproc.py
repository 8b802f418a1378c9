# ruff: noqa: E501
"""In-process measurements for `make bench`, run by bench/run.py against one seeded database.

    DATABASE_URL=... python bench/inproc.py cursors 100 1000 ...   # signed ?after= cursors
    DATABASE_URL=... python bench/inproc.py timings --calls 30 --depths 1 100 1000
    DATABASE_URL=... python bench/inproc.py shop --buyers 8 --orders 200   # what the HTTP runs use
    DATABASE_URL=... python bench/inproc.py checkout-verify --after-order ID --stock '{"12": 40}'

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


def shop(buyers: int, orders: int, slugs: int = 200) -> dict:
    """What the HTTP runs need from the seeded shop: a product page, pages for the memory mix,
    seeded shoppers and their password, and the checkout's products.

    Checkout: every order takes one unit of a *hot* product (all buyers contend for its row
    lock) while it lasts, and one unit of a *pool* product. The hot product's stock is the
    seeded one closest to 60 % of the orders, so it sells out during the run and the
    no-oversell check means something; pool products have enough stock for every order."""
    from django.db.models import F, Max
    from django.db.models.functions import Abs

    from storefront.catalog.models import Category
    from storefront.orders.models import Order
    from storefront.seeding.shoppers import SHOPPER_PASSWORD, seeded_shoppers

    active = Product.objects.filter(is_active=True)
    first = list(listing_queryset()[:1])
    users = list(seeded_shoppers().order_by("username").values_list("username", flat=True))
    if len(users) < buyers + 1:
        raise SystemExit(f"{buyers + 1} seeded shoppers needed, the shop has {len(users)}")
    target = max(3, orders * 6 // 10)
    hot = (
        active.filter(stock__gte=3)
        .annotate(distance=Abs(F("stock") - target))
        .order_by("distance", "id")
        .values("id", "slug", "stock")
        .first()
    )
    pool = list(
        active.filter(stock__gte=max(20, orders // 10))
        .exclude(id=hot["id"] if hot else None)
        .order_by("-stock", "id")
        .values("id", "slug", "stock")[:50]
    )
    words = [p.name.split()[0] for p in active.order_by("id")[:5]]
    return {
        "product_slug": first[0].slug if first else None,
        "slugs": list(active.order_by("id").values_list("slug", flat=True)[:slugs]),
        "categories": list(Category.objects.order_by("id").values_list("slug", flat=True)[:8]),
        "search_words": words,
        "password": SHOPPER_PASSWORD,
        # The last shopper is the signed-in listing's; the first `buyers` check out.
        "buyers": users[:buyers],
        "signed_in": users[-1],
        "hot": hot,
        "pool": pool,
        "max_order_id": Order.objects.aggregate(m=Max("id"))["m"] or 0,
    }


def checkout_verify(after_order: int, stock: dict[str, int]) -> dict:
    """Read back what the checkout run did, from the database: orders placed after
    `after_order`, units sold per product, and each product's stock now against its stock
    before (`stock`). Oversold: a product whose stock went below zero or whose units sold are
    not exactly what its stock lost, or an order line for a product not in `stock`."""
    from django.db.models import Sum

    from storefront.orders.models import Order, OrderLine

    orders = Order.objects.filter(id__gt=after_order)
    sold = dict(
        OrderLine.objects.filter(order_id__gt=after_order)
        .values_list("product_id")
        .annotate(units=Sum("quantity"))
        .values_list("product_id", "units")
    )
    now = dict(Product.objects.filter(id__in=[int(k) for k in stock]).values_list("id", "stock"))
    rows, oversold = [], []
    for key, before in stock.items():
        pid = int(key)
        units = sold.get(pid, 0)
        row = {"product_id": pid, "before": before, "sold": units, "after": now.get(pid)}
        rows.append(row)
        if now.get(pid) is None or now[pid] < 0 or units > before or before - units != now[pid]:
            oversold.append(row)
    unexpected = sorted(set(sold) - {int(k) for k in stock})
    return {
        "orders": orders.count(),
        "order_lines": OrderLine.objects.filter(order_id__gt=after_order).count(),
        "units": sum(sold.values()),
        "products": rows,
        "oversold": oversold,
        "unexpected_products": unexpected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cursors")
    c.add_argument("depths", type=int, nargs="+")
    t = sub.add_parser("timings")
    t.add_argument("--calls", type=int, default=30)
    t.add_argument("--depths", type=int, nargs="+", default=[1, 100, 10_000])
    sh = sub.add_parser("shop")
    sh.add_argument("--buyers", type=int, default=4)
    sh.add_argument("--orders", type=int, default=20)
    v = sub.add_parser("checkout-verify")
    v.add_argument("--after-order", type=int, required=True)
    v.add_argument("--stock", required=True, help="JSON: product id -> stock before the run")
    args = parser.parse_args()
    if args.command == "cursors":
        result = cursors(args.depths)
    elif args.command == "shop":
        result = shop(args.buyers, args.orders)
    elif args.command == "checkout-verify":
        result = checkout_verify(args.after_order, json.loads(args.stock))
    else:
        result = timings(args.calls, args.depths)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
