# ruff: noqa: RUF005
"""The comparisons measured over HTTP on one dataset's stack: servers, caches, page depth, N+1
and gunicorn workers."""

from __future__ import annotations

from dataset import Dataset, inproc, start_nginx, start_pair
from measure import Bench, ratio
from modes import CORES

import harness
from harness import log

PER_PAGE = 24


def compare_servers(
    b: Bench, ds: Dataset, g: harness.Server, n: harness.Server, static: str
) -> dict:
    """1. runserver vs gunicorn alone vs nginx → gunicorn: hello, a static file, the listing."""
    out: dict = {}
    for server_label, url, servers in (("gunicorn", g.url, [g]), ("nginx→gunicorn", n.url, [n, g])):
        out[server_label] = {
            "hello": b.wrk(f"{server_label} hello", f"{url}/__bench__/hello/", servers=servers),
            "static": b.wrk(f"{server_label} static", f"{url}{static}", servers=servers),
            "listing_uncached": b.wrk(
                f"{server_label} listing (uncached)",
                f"{url}/products/",
                servers=servers,
                unique=True,
            ),
        }
    r = harness.start_runserver(ds.env, ds.workdir / "runserver.log")
    try:
        out["runserver"] = {
            "hello": b.wrk("runserver hello", f"{r.url}/__bench__/hello/", servers=[r]),
            "static": b.wrk("runserver static", f"{r.url}{static}", servers=[r]),
            "listing_uncached": b.wrk(
                "runserver listing (uncached)", f"{r.url}/products/", servers=[r], unique=True
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
        if server != "ratios"
    }
    return out


def compare_cache(b: Bench, ds: Dataset, g: harness.Server, n: harness.Server, refs: dict) -> dict:
    """2. listing uncached (unique query string per request) vs app-cache hit vs microcache hit."""
    out: dict = {
        "method_uncached": (
            "every request has a unique query string (bench_nonce=<run>-<n>, wrk Lua script), so "
            "Django's page cache (keyed on the full query string) misses every time and stores "
            "the page; the nginx microcache is off for this run"
        ),
        "uncached": refs["listing_uncached"],
        "app_hit": b.wrk("listing app-cache hit", f"{n.url}/products/", servers=[n, g]),
    }
    out["app_hit_confirmed"] = out["app_hit"]["probe"]["x_storefront_cache"] == "HIT"
    # The microcache: another nginx, NGINX_MICROCACHE=on, in front of the same gunicorn.
    try:
        m = start_nginx(ds, g, "micro", "on")
    except Exception as exc:
        out["micro_hit"] = {
            "available": False,
            "reason": f"nginx with NGINX_MICROCACHE=on: {exc}"[:400],
        }
        return out
    try:
        harness.fetch(f"{m.url}/products/")
        _, headers, _ = harness.fetch(f"{m.url}/products/")
        if "X-Cache-Status" not in headers:
            out["micro_hit"] = {
                "available": False,
                "reason": "not available in this build: no X-Cache-Status header from nginx",
            }
        else:
            out["static_micro_nginx"] = b.wrk(
                "nginx static (microcache nginx)", f"{m.url}{refs['static_path']}", servers=[m]
            )
            out["micro_hit"] = b.wrk(
                "listing nginx microcache hit", f"{m.url}/products/", servers=[m, g]
            )
            out["micro_hit"]["available"] = out["micro_hit"]["probe"]["x_cache_status"] in {
                "HIT",
                "UPDATING",
                "STALE",
            }
    finally:
        m.stop()
    return out


def compare_depth(b: Bench, ds: Dataset, g: harness.Server, n: harness.Server) -> dict:
    """4. page depth: offset (?page=N) vs keyset (?after=cursor), over HTTP and in-process."""
    depths = b.cfg["depths"]
    products = ds.counts.get("products", 0)
    out: dict = {"products": products, "http": {}, "notes": []}
    cursors = inproc(ds, ["cursors", *map(str, depths)])
    out["http"]["page 1"] = b.wrk(
        "listing page 1", f"{n.url}/products/", servers=[n, g], unique=True
    )
    for depth in depths:
        if depth == 1:
            continue
        status, _, _ = harness.fetch(f"{n.url}/products/?page={depth}")
        out.setdefault("offset_http_status", {})[str(depth)] = status
        if status == 200:
            out["http"][f"offset page {depth}"] = b.wrk(
                f"listing ?page={depth}",
                f"{n.url}/products/?page={depth}",
                servers=[n, g],
                unique=True,
            )
        cursor = cursors["cursors"].get(str(depth))
        if cursor is None:
            out["notes"].append(
                f"page {depth:,} needs {(depth - 1) * PER_PAGE + 1:,} products; this dataset has "
                f"{products:,}: not measured"
            )
            continue
        url = f"{n.url}/products/?after={cursor}"
        status, _, _ = harness.fetch(url)
        if status != 200:
            out["http"][f"keyset page {depth}"] = {
                "available": False,
                "reason": f"not available in this build: ?after= answered {status}",
            }
            continue
        out["http"][f"keyset page {depth}"] = b.wrk(
            f"listing keyset page {depth}", url, servers=[n, g], unique=True
        )
    bad = [d for d, s in out.get("offset_http_status", {}).items() if s != 200]
    if bad:
        out["notes"].append(
            "?page=N beyond the numbered pages answers "
            + ", ".join(f"{d}: HTTP {out['offset_http_status'][d]}" for d in bad)
            + " in this build (numbered pages stop at 5, then ?after= cursors): offset at depth is "
            "timed in-process instead (Django Paginator: COUNT + OFFSET/LIMIT)"
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


def compare_workers(b: Bench, ds: Dataset, hello: dict) -> dict:
    """7. gunicorn workers 1..2N+1 (sync) and worker classes (listing uncached, behind nginx)."""
    configs = [("sync", w, 1) for w in b.cfg["workers"]]
    configs += [
        ("gthread", 2, 4),
        ("gthread", CORES + 1, 4),
        ("gevent", 2, 1),
        ("gevent", 2 * CORES + 1, 1),
    ]
    if b.mode == "smoke":
        configs = configs[:1] + [("gthread", 2, 4), ("gevent", 2, 1)]
    out: dict = {"runs": []}
    for worker_class, workers, threads in configs:
        label = f"{worker_class} ×{workers}" + (f" ({threads} threads)" if threads > 1 else "")
        try:
            g, n = start_pair(
                ds,
                f"w-{worker_class}-{workers}",
                workers=workers,
                worker_class=worker_class,
                threads=threads,
            )
        except Exception as exc:
            out["runs"].append({"label": label, "error": str(exc)[-500:]})
            log(f"  {label}: could not start: {str(exc)[-300:]}")
            continue
        try:
            run = b.wrk(
                f"workers {label}: listing (uncached)",
                f"{n.url}/products/",
                servers=[n, g],
                unique=True,
            )
        finally:
            n.stop()
            g.stop()
        run.update(
            worker_class=worker_class, workers=workers, threads=threads, vs_hello=ratio(run, hello)
        )
        out["runs"].append(run)
    return out
