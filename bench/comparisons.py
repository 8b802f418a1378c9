"""The comparisons measured over HTTP on one dataset's stacks: servers, caches, signed-in
pages, checkout, worker memory, page depth, N+1 and gunicorn workers.

Two stacks serve the main dataset, identical but for one setting: the *uncached* one
(STOREFRONT_CACHE_TTL_PAGES=0, dataset.uncached_env: Django's page cache stores nothing, every
request renders its page, X-Storefront-Cache: MISS on every repeat) for the uncached figures,
and the *production* one (the page cache as deployed) for cache hits, signed-in pages and
checkout. Each measures its own hello-world reference; every ratio is to the hello of the
stack it was measured on.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from checkout import run_checkout, signed_in_session
from dataset import Dataset, inproc, start_nginx, start_pair, uncached_env
from measure import Bench, get, ratio, ratio_to_reference
from memory import Driver, page_mix, worker_memory
from modes import CORES

import harness
from harness import log

PER_PAGE = 24
MISS = {"X-Storefront-Cache": "MISS"}
HIT = {"X-Storefront-Cache": "HIT"}
# nginx answered from its microcache (UPDATING/STALE: a stored copy while one request refreshes).
MICRO_HIT = {"X-Cache-Status": ("HIT", "UPDATING", "STALE")}
METHOD_UNCACHED = (
    "a second gunicorn (and nginx) on the same database started with "
    "STOREFRONT_CACHE_TTL_PAGES=0 and a cache key prefix of its own: Django's page cache stores "
    "nothing (with a timeout of 0 the page-cache wrapper skips its store: no round trip) and "
    "finds nothing another stack stored, so every request renders its page; the "
    "probe's second GET of the same URL must answer X-Storefront-Cache: MISS, else the run "
    "fails. The inner caches (category tree, counts, query results) keep their production "
    "TTLs; the nginx microcache is off"
)


def compare_servers(
    b: Bench, ds: Dataset, g: harness.Server, n: harness.Server, static: str
) -> dict:
    """1. runserver vs gunicorn alone vs nginx → gunicorn: hello, a static file, the uncached
    listing (the uncached stack), and what counting statuses in wrk's Lua costs."""
    out: dict = {}
    for server_label, url, servers in (("gunicorn", g.url, [g]), ("nginx→gunicorn", n.url, [n, g])):
        out[server_label] = {
            "hello": b.wrk(f"{server_label} hello", f"{url}/__bench__/hello/", servers=servers),
            "static": b.wrk(f"{server_label} static", f"{url}{static}", servers=servers),
            "listing_uncached": b.wrk(
                f"{server_label} listing (uncached)",
                f"{url}/products/",
                servers=servers,
                expect_headers=MISS,
            ),
        }
    # The same static run without report.lua's response(): what counting statuses costs wrk.
    uncounted = b.wrk(
        "nginx static, statuses not counted (cost check only)",
        f"{n.url}{static}",
        servers=[n],
        count_status=False,
    )
    counted = out["nginx→gunicorn"]["static"]
    out["status_counting"] = {
        "counted": counted,
        "uncounted": uncounted,
        "cost": round(1 - counted["rps"] / uncounted["rps"], 3)
        if counted.get("rps") and uncounted.get("rps")
        else None,
    }
    r = harness.start_runserver({**ds.env, **uncached_env(ds)}, ds.workdir / "runserver.log")
    try:
        out["runserver"] = {
            "hello": b.wrk("runserver hello", f"{r.url}/__bench__/hello/", servers=[r]),
            "static": b.wrk("runserver static", f"{r.url}{static}", servers=[r]),
            "listing_uncached": b.wrk(
                "runserver listing (uncached)",
                f"{r.url}/products/",
                servers=[r],
                expect_headers=MISS,
            ),
        }
    finally:
        r.stop()
    ref = out["nginx→gunicorn"]
    out["ratios"] = {
        server: {
            "hello_vs_nginx_hello": ratio(v["hello"], ref["hello"]),
            "static_vs_nginx_static": ratio(v["static"], ref["static"]),
            "listing_vs_nginx_hello": ratio(v["listing_uncached"], ref["hello"]),
        }
        for server, v in out.items()
        if server in ("gunicorn", "nginx→gunicorn", "runserver")
    }
    return out


def bracketed(
    b: Bench,
    reference: tuple[str, str],
    pages: list[tuple[str, str, str, dict]],
    servers: list[harness.Server],
) -> dict:
    """Each page between two runs of the reference, in one sequence R, P1, R, P2, R, ...,
    repeated for the mode's `rounds`.

    `reference` is (label, url); `pages` are (key, label, url, wrk keyword arguments). Each
    page run gets a "reference" bracket (the runs right before and after it), and its ratio is
    to their mean (measure.ratio_to_reference): the shared VM's speed drifts by tens of percent
    within minutes, which a single reference measured minutes earlier would put in the ratio.
    With several rounds, a page's figure is its median round (by that ratio), which carries
    every round's ratio in "rounds"; a failed round fails the bench as any failed run does.
    Returns the page runs by key, "hello" (the first reference run) and "references" (all)."""
    label, url = reference
    before = b.wrk(f"{label} (reference 1)", url, servers=servers)
    out: dict = {"hello": before, "references": [before]}
    tried: dict[str, list[dict]] = {key: [] for key, *_ in pages}
    rounds = b.cfg.get("rounds", 1)
    for round_number in range(1, rounds + 1):
        for key, page_label, page_url, kwargs in pages:
            suffix = f", round {round_number}/{rounds}" if rounds > 1 else ""
            run = b.wrk(page_label + suffix, page_url, servers=servers, **kwargs)
            after = b.wrk(f"{label} (reference {len(out['references']) + 1})", url, servers=servers)
            run["reference"] = {
                side: {"label": r["label"], "rps": r.get("rps"), "ok": r.get("ok")}
                for side, r in (("before", before), ("after", after))
            }
            tried[key].append(run)
            out["references"].append(after)
            before = after
    for key, runs in tried.items():
        out[key] = median_round(runs)
    return out


def _median_run(runs: list[dict], value: Callable[[dict], float | None]) -> dict:
    """The run whose `value` is the median of the runs' (the lower middle one of an even count),
    with every run's value in "rounds"; the first run without a value (failed) if any; {} for
    no runs."""
    values = [value(run) for run in runs]
    if not runs or any(v is None for v in values):
        return next((run for run, v in zip(runs, values, strict=True) if v is None), {})
    ranked = sorted(zip(values, range(len(runs)), strict=True))
    chosen = dict(runs[ranked[(len(ranked) - 1) // 2][1]])
    if len(runs) > 1:
        chosen["rounds"] = values
    return chosen


def median_round(runs: list[dict]) -> dict:
    """A bracketed page's median round by its ratio to the hello runs around it."""
    return _median_run(runs, lambda run: ratio_to_reference(run, None))


def compare_uncached(b: Bench, g: harness.Server, n: harness.Server, slug: str) -> dict:
    """2a. The uncached pages on the uncached stack, each bracketed by hello runs: the listing
    and a product page."""
    runs = bracketed(
        b,
        ("uncached stack hello", f"{n.url}/__bench__/hello/"),
        [
            ("listing", "listing (uncached)", f"{n.url}/products/", {"expect_headers": MISS}),
            (
                "product",
                "product page (uncached)",
                f"{n.url}/products/{slug}/",
                {"expect_headers": MISS},
            ),
        ],
        [n, g],
    )
    return {"method": METHOD_UNCACHED, **runs}


def compare_cached(
    b: Bench,
    ds: Dataset,
    g: harness.Server,
    n: harness.Server,
    static: str,
    slug: str,
    session: dict,
) -> dict:
    """2b. On the production stack: its own hello and static references, app-cache hits
    (listing and product), the signed-in listing, and the nginx microcache."""
    out: dict = bracketed(
        b,
        ("production stack hello", f"{n.url}/__bench__/hello/"),
        [
            ("listing_hit", "listing app-cache hit", f"{n.url}/products/", {"expect_headers": HIT}),
            (
                "product_hit",
                "product page app-cache hit",
                f"{n.url}/products/{slug}/",
                {"expect_headers": HIT},
            ),
            # After the listing's hit, whose probe stored the page this reads.
            (
                "round_trip",
                "hello + one Redis round trip (an app-cache hit's lookup)",
                f"{n.url}/__bench__/round-trip/",
                {"expect_headers": HIT},
            ),
            (
                "signed_in",
                f"signed-in listing ({session['username']}, cart of {session['cart_items']})",
                f"{n.url}/products/",
                {
                    "headers": {"Cookie": session["cookie"]},
                    "expect_headers": {"X-Storefront-Cache": "BYPASS"},
                    "expect_body": session["badge"],
                },
            ),
        ],
        [n, g],
    )
    out |= {
        "static": b.wrk("static file (production stack)", f"{n.url}{static}", servers=[n]),
        "signed_in_method": (
            f"seeded shopper {session['username']} logged in once through nginx (login form "
            f"GET, then POST with its CSRF token), {session['cart_items']} products added to the "
            "cart by POST; wrk sends that browser's Cookie header (session and CSRF cookies). "
            f"The probe must show the cart badge ({session['badge'].decode()}) and "
            "X-Storefront-Cache: BYPASS (a session is never served from the page cache)"
        ),
    }
    # The microcache: another nginx, NGINX_MICROCACHE=on, in front of the same gunicorn.
    try:
        m = start_nginx(ds, g, "micro", "on")
    except Exception as exc:
        b.fail("nginx microcache", [f"nginx with NGINX_MICROCACHE=on did not start: {exc}"[:400]])
        return out
    try:
        out["static_micro_nginx"] = b.wrk(
            "static file (microcache nginx)", f"{m.url}{static}", servers=[m]
        )
        out["micro_hit"] = b.wrk(
            "listing nginx microcache hit",
            f"{m.url}/products/",
            servers=[m, g],
            expect_headers=MICRO_HIT,
        )
    finally:
        m.stop()
    return out


def compare_checkout(b: Bench, ds: Dataset, n: harness.Server, shop: dict) -> dict:
    """3. Orders per second with concurrent buyers through nginx, on PostgreSQL; then the
    database is read back: every unit sold is a unit of stock gone, none below zero."""
    cfg = b.cfg["checkout"]
    label = f"checkout: {cfg['buyers']} buyers × {cfg['orders']} orders"
    stock_before = {str(p["id"]): p["stock"] for p in [shop["hot"], *shop["pool"]] if p}
    try:
        out = run_checkout(
            n.url,
            buyers=shop["buyers"],
            password=shop["password"],
            hot=shop["hot"],
            pool=shop["pool"],
            orders_per_buyer=cfg["orders"],
        )
        out["verify"] = inproc(
            ds,
            [
                "checkout-verify",
                "--after-order",
                str(shop["max_order_id"]),
                "--stock",
                json.dumps(stock_before),
            ],
        )
    except Exception as exc:
        b.fail(label, [f"{type(exc).__name__}: {exc}"[:500]])
        return {"label": label, "error": str(exc)[:500]}
    out["label"] = label
    out["hot"] = shop["hot"]
    v = out["verify"]
    problems = []
    if out["unexpected"]:
        problems.append(f"{out['unexpected']} unexpected answers: {out['errors'][:5]}")
    if not out["placed"]:
        problems.append("no order placed")
    if v["orders"] != out["placed"]:
        problems.append(f"{out['placed']} orders placed over HTTP, {v['orders']} in the database")
    if v["oversold"] or v["unexpected_products"]:
        problems.append(
            f"oversold: {v['oversold']}; lines for unexpected products {v['unexpected_products']}"
        )
    out["oversold"] = len(v["oversold"])
    out["ok"] = not problems
    out["problems"] = problems
    if problems:
        b.fail(label, problems)
    log(
        f"  {label}: {out['placed']} placed, {out['refused_sold_out']} refused (sold out), "
        f"{out['orders_per_s']} orders/s, checkout POST p95 {out['checkout_p95_ms']} ms, "
        f"oversold {out['oversold']}"
    )
    return out


def compare_memory(b: Bench, ds: Dataset, shop: dict, cookie: str | None) -> dict:
    """4. RSS of one gunicorn worker after 100 requests of a page mix and after many more."""
    checkpoints = b.cfg["memory_checkpoints"]
    label = f"worker memory after {checkpoints[0]:,} and {checkpoints[-1]:,} requests"
    g = harness.serve_gunicorn(
        ds.env, ds.workdir / "memory-gunicorn.log", workers=1, extra_env=uncached_env(ds)
    )
    try:
        pids = g.pids()
        if len(pids) != 1:
            b.fail(label, [f"expected one worker process, found {pids}"])
            return {}
        mix = page_mix(shop, cookie)
        driver = Driver(g.url, mix, threads=2)
        points = []
        done = 0
        for target in checkpoints:
            driver.run(target - done)
            done = target
            points.append({"requests": done, **worker_memory(pids[0])})
            log(f"  memory after {done:,} requests: {points[-1]}")
        if g.pids() != pids:
            b.fail(label, ["the worker was replaced during the run"])
    finally:
        g.stop()
    first, last = points[0], points[-1]
    out = {
        "label": label,
        "mix_paths": len(mix),
        "mix_sample": [p for p, _ in mix[:12]],
        "points": points,
        "statuses": driver.statuses,
        "cache_headers": driver.cache_headers,
        "rss_ratio": round(last["rss_mb"] / first["rss_mb"], 3),
        "uss_ratio": round(last["uss_mb"] / first["uss_mb"], 3),
    }
    problems = []
    if set(driver.statuses) != {"2xx"}:
        problems.append(f"non-2xx answers: {driver.statuses}; {driver.failures[:5]}")
    out["ok"] = not problems
    out["problems"] = problems
    if problems:
        b.fail(label, problems)
    return out


def compare_depth(b: Bench, ds: Dataset, g: harness.Server, n: harness.Server) -> dict:
    """5. page depth: offset (?page=N) vs keyset (?after=cursor), over HTTP (uncached stack)
    and in-process."""
    depths = b.cfg["depths"]
    products = ds.counts.get("products", 0)
    out: dict = {"products": products, "http": {}, "notes": []}
    cursors = inproc(ds, ["cursors", *map(str, depths)])
    out["http"]["page 1"] = b.wrk(
        "listing page 1", f"{n.url}/products/", servers=[n, g], expect_headers=MISS
    )
    for depth in depths:
        if depth == 1:
            continue
        # Not followed: a redirect (?page=N past the numbered pages) is not that page.
        status, _, _ = get(f"{n.url}/products/?page={depth}")
        out.setdefault("offset_http_status", {})[str(depth)] = status
        if status == 200:
            out["http"][f"offset page {depth}"] = b.wrk(
                f"listing ?page={depth}",
                f"{n.url}/products/?page={depth}",
                servers=[n, g],
                expect_headers=MISS,
            )
        cursor = cursors["cursors"].get(str(depth))
        if cursor is None:
            out["notes"].append(
                f"page {depth:,} needs {(depth - 1) * PER_PAGE + 1:,} products; this dataset has "
                f"{products:,}: not measured"
            )
            continue
        url = f"{n.url}/products/?after={cursor}"
        status, _, _ = get(url)
        if status != 200:
            out["http"][f"keyset page {depth}"] = {
                "available": False,
                "reason": f"not available in this build: ?after= answered {status}",
            }
            continue
        out["http"][f"keyset page {depth}"] = b.wrk(
            f"listing keyset page {depth}", url, servers=[n, g], expect_headers=MISS
        )
    bad = [d for d, s in out.get("offset_http_status", {}).items() if s != 200]
    if bad:
        out["notes"].append(
            "?page=N beyond the numbered pages answers "
            + ", ".join(f"{d}: HTTP {out['offset_http_status'][d]}" for d in bad)
            + " in this build (numbered pages stop at 5; a bookmarked ?page=N past them redirects "
            "to its ?after= cursor page, which is measured as keyset): offset at depth is timed "
            "in-process instead (Django Paginator: COUNT + OFFSET/LIMIT)"
        )
    return out


def compare_n_plus_one(b: Bench, g: harness.Server, n: harness.Server) -> dict:
    """6. N+1 loop (bench-only view) vs the selector, same rendering, over HTTP."""
    return {
        "n_plus_one": b.wrk(
            "N+1 listing (bench view)", f"{n.url}/__bench__/n-plus-one/", servers=[n, g]
        ),
        "selector": b.wrk(
            "selector listing (bench view)", f"{n.url}/__bench__/selector/", servers=[n, g]
        ),
    }


def worker_configs(mode: str, cores: int = CORES) -> list[tuple[str, int, int]]:
    """(class, workers, threads) of the sweep: sync ×1, ×2, ×cores, ×(cores+1), ×(2×cores+1)
    (each count once; cores+1 tells `cores` from `cores + 1` apart) and gthread 2 × 4 threads;
    full mode every sync count from 1 to 2×cores+1; smoke only ×1, the default (cores) and the
    old default (2×cores+1)."""
    if mode == "full":
        counts = list(range(1, 2 * cores + 2))
    elif mode == "smoke":
        counts = sorted({1, cores, 2 * cores + 1})
    else:
        counts = sorted({1, 2, cores, cores + 1, 2 * cores + 1})
    return [("sync", w, 1) for w in counts] + [("gthread", 2, 4)]


def formulas(workers: int, cores: int = CORES) -> list[str]:
    """The usual worker-count formulas that give `workers` on a machine with `cores` cores."""
    candidates = {
        "1": 1,
        "2": 2,
        "cores": cores,
        "cores + 1": cores + 1,
        "2 × cores": 2 * cores,
        "2 × cores + 1": 2 * cores + 1,
    }
    return [name for name, value in candidates.items() if value == workers]


def worker_finding(runs: list[dict], cores: int = CORES) -> dict:
    """The best configuration per page, the loss of deploy/gunicorn.conf.py's default (one sync
    worker per core) and of the usual 2 × cores + 1 (its default before this sweep) against it,
    and the formulas matching the best sync count on the uncached listing."""
    out: dict = {"cores": cores}
    default, old_default = cores, 2 * cores + 1
    for page in ("listing", "hello"):
        measured = [r for r in runs if r.get(page, {}).get("ok")]
        if not measured:
            continue
        best = max(measured, key=lambda r: r[page]["rps"])
        sync = [r for r in measured if r["worker_class"] == "sync"]
        best_sync = max(sync, key=lambda r: r[page]["rps"]) if sync else None
        dflt = next((r for r in sync if r["workers"] == default), None)
        old = next((r for r in sync if r["workers"] == old_default), None)
        # The spread of the best configuration's own rounds: a configuration closer to it
        # than that is not told apart from it by this run.
        rates = best[page].get("rounds") or [best[page]["rps"]]
        noise = round((max(rates) - min(rates)) / best[page]["rps"], 3)
        out[page] = {
            "noise": noise,
            "default_ties_best": (
                dflt is not None
                and best[page]["rps"] - dflt[page]["rps"] <= noise * best[page]["rps"]
            ),
            "best": best["label"],
            "best_rps": best[page]["rps"],
            "best_sync": best_sync["label"] if best_sync else None,
            "best_sync_workers": best_sync["workers"] if best_sync else None,
            "default_rps": dflt[page]["rps"] if dflt else None,
            "default_loss": round(1 - dflt[page]["rps"] / best[page]["rps"], 3) if dflt else None,
            "old_default_rps": old[page]["rps"] if old else None,
            "old_default_loss": round(1 - old[page]["rps"] / best[page]["rps"], 3) if old else None,
        }
    listing = out.get("listing")
    if listing and listing["best_sync_workers"]:
        out["formulas"] = formulas(listing["best_sync_workers"], cores)
    return out


def compare_workers(b: Bench, ds: Dataset) -> dict:
    """7. gunicorn worker counts and classes: the uncached listing and hello behind nginx, one
    uncached stack per configuration, the configurations in turn for the mode's rounds (so the
    VM's drift spreads over all of them rather than favouring whichever ran in a quiet minute);
    each configuration shows its median round per page (`median_rate`)."""
    configs = worker_configs(b.mode)
    tried: dict[str, dict] = {}
    rounds = b.cfg.get("rounds", 1)
    for round_number in range(1, rounds + 1):
        for worker_class, workers, threads in configs:
            label = f"{worker_class} ×{workers}" + (f" ({threads} threads)" if threads > 1 else "")
            entry = tried.setdefault(
                label,
                {
                    "label": label,
                    "worker_class": worker_class,
                    "workers": workers,
                    "threads": threads,
                    "listing": [],
                    "hello": [],
                },
            )
            if entry.get("error"):
                continue
            suffix = f", round {round_number}/{rounds}" if rounds > 1 else ""
            try:
                g, n = start_pair(
                    ds,
                    f"w-{worker_class}-{workers}-{round_number}",
                    uncached=True,
                    workers=workers,
                    worker_class=worker_class,
                    threads=threads,
                )
            except Exception as exc:
                b.fail(f"workers {label}", [f"could not start: {str(exc)[-300:]}"])
                entry["error"] = str(exc)[-500:]
                continue
            try:
                entry["listing"].append(
                    b.wrk(
                        f"workers {label}: listing (uncached){suffix}",
                        f"{n.url}/products/",
                        servers=[n, g],
                        expect_headers=MISS,
                    )
                )
                entry["hello"].append(
                    b.wrk(
                        f"workers {label}: hello{suffix}",
                        f"{n.url}/__bench__/hello/",
                        servers=[n, g],
                    )
                )
            finally:
                n.stop()
                g.stop()
    out: dict = {"runs": [], "rounds": rounds}
    for entry in tried.values():
        if entry.get("error"):
            out["runs"].append({"label": entry["label"], "error": entry["error"]})
            continue
        listing, hello = median_rate(entry["listing"]), median_rate(entry["hello"])
        out["runs"].append(
            {**entry, "listing": listing, "hello": hello, "listing_vs_hello": ratio(listing, hello)}
        )
    out["finding"] = worker_finding(out["runs"])
    return out


def median_rate(runs: list[dict]) -> dict:
    """A configuration's median round by its 2xx rate (a failed run has none)."""
    return _median_run(runs, lambda run: run["rps"] if run.get("ok") else None)


def signed_in(n: harness.Server, shop: dict) -> dict:
    """The signed-in shopper of the signed-in listing run (logged in through `n`)."""
    return signed_in_session(
        n.url, shop["signed_in"], shop["password"], [p["id"] for p in shop["pool"][:2]]
    )
