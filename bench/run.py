# ruff: noqa: E501, SIM105, S110
"""`make bench`: Storefront's benchmark report (bench/REPORT.md, bench/results/, bench/plots/).

    .venv/bin/python bench/run.py                  # quick mode (default): well under 10 minutes
    .venv/bin/python bench/run.py --mode full      # 10k / 100k / 1M products, 1M orders: bench/full/
    .venv/bin/python bench/run.py --mode smoke --out /tmp/bench-smoke   # self-check, elsewhere
    make bench [BENCH_MODE=full]

Seeds throwaway PostgreSQL databases (bench_<pid>_*: migrated once into a template, cloned per
size, seeded with `storefront seed`, dropped at the end), starts the stack on free loopback
ports (gunicorn with deploy/gunicorn.conf.py and GUNICORN_* variables; nginx rendered from
deploy/nginx by scripts/render_nginx.py; `storefront runserver`), drives bounded load with wrk
(fixed duration, one connection count) and samples CPU and RSS of every server process
(psutil) during each run. Every figure is reported as a ratio to references measured in the
same run on the same stack: a Django "hello world" view (bench-only URLconf, see
bench/bench_urls.py) behind the same gunicorn and nginx, and nginx serving a static file.

Only 2xx answers count: every wrk run counts responses by status class (bench/lua/report.lua)
and reports 2xx req/s; a run with any other status or a socket error, or whose probe does not
show what it claims to measure, fails, and so does the bench (exit status 1, the report's
"Failed runs" section names each with its status counts). "Uncached" pages are served by a
second stack whose page cache stores nothing (STOREFRONT_CACHE_TTL_PAGES=0), not by making URLs
unique: the page cache keys on the query parameters a view reads, so made-up ones hit it.

Everything stops by itself: wrk runs for a fixed time, every server runs in its own process
group and is stopped in `finally` blocks, at exit and on SIGTERM/Ctrl-C; the databases are
dropped and the Redis keys (our own prefix) deleted.

The pieces, by topic: modes.py (what --mode sets), dataset.py (the seeded databases and the
servers on them), measure.py (one wrk run with CPU/RSS sampling and its 2xx verdict),
comparisons.py (what is compared over HTTP), checkout.py (signed-in shoppers and concurrent
buyers), memory.py (worker RSS over a page mix), inproc.py (in-process timings and database
reads), targets.py (the headline figures), report.py (REPORT.md and the plots).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # for harness/

from comparisons import (
    MISS,
    PER_PAGE,
    compare_cached,
    compare_checkout,
    compare_depth,
    compare_memory,
    compare_n_plus_one,
    compare_servers,
    compare_uncached,
    compare_workers,
    signed_in,
)
from dataset import (
    REDIS_URL,
    THROUGHPUT_BURST,
    THROUGHPUT_LIMITS,
    Dataset,
    inproc,
    prepare,
    start_pair,
    static_path,
)
from measure import WRK, Bench, ratio
from modes import CORES, MODES
from targets import TARGETS, summarize

import harness
from harness import PROCESSES, log

T = TypeVar("T")
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PLOTS_DIR = BENCH_DIR / "plots"
REPORT = BENCH_DIR / "REPORT.md"


def step(b: Bench, name: str, default: T, fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)`: one comparison; an exception fails the bench (recorded) but not the rest."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        traceback.print_exc()
        b.fail(name, [f"{type(exc).__name__}: {exc}"[-1500:]])
        return default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode", choices=sorted(MODES), default=os.environ.get("BENCH_MODE") or "quick"
    )
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write REPORT.md, results/ and plots/ here instead of bench/ (default for the full "
        "mode: bench/full, so the committed quick and full reports both stay)",
    )
    args = parser.parse_args(argv)
    if args.out is None and args.mode == "full":
        args.out = BENCH_DIR / "full"
    report_path, results_dir, plots_dir = REPORT, RESULTS_DIR, PLOTS_DIR
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report_path = args.out / "REPORT.md"
        results_dir, plots_dir = args.out / "results", args.out / "plots"
    for tool in ("nginx", WRK):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install nginx wrk)")
    PROCESSES.install()
    started = time.monotonic()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    run_id = f"{os.getpid()}"
    workdir = harness.temp_dir(f"storefront-bench-{stamp}-")
    cfg = MODES[args.mode]
    b = Bench(args.mode, workdir)
    results: dict = {
        "timestamp": stamp,
        "mode": args.mode,
        "machine": {
            "cores": CORES,
            "python": platform.python_version(),
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "wrk": f"{WRK} -t1 -c{cfg['connections']} -d{cfg['duration']}s --latency (+{cfg['warmup']}s warm-up)",
            "loadavg_start": os.getloadavg(),
        },
        "nginx_limits": {
            **THROUGHPUT_LIMITS,
            "limit_req burst": THROUGHPUT_BURST,
        },
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=harness.REPO_ROOT,
        ).stdout.strip(),
        "comparisons": {},
        "problems": [],
    }
    datasets: list[Dataset] = []
    template = None
    redis_ok = harness.redis_available(REDIS_URL)
    if not redis_ok:
        results["problems"].append(f"Redis at {REDIS_URL} unavailable: file cache used instead")
    comps = results["comparisons"]
    try:
        datasets, template = prepare(args.mode, workdir, run_id)
        results["datasets"] = {ds.label: ds.counts for ds in datasets}
        by_label = {ds.label: ds for ds in datasets}
        main_ds = by_label[cfg["main"]]
        largest = datasets[-1]
        static = static_path(Path(main_ds.env["STATIC_ROOT"]))
        # The deepest page the largest dataset has, when it is short of the configured depths.
        deepest = (largest.counts["products"] * 95 // 100) // PER_PAGE  # ~3 % are inactive
        if deepest < max(cfg["depths"]):
            cfg["depths"] = sorted({d for d in cfg["depths"] if d <= deepest} | {deepest})
        size_runs: dict[str, dict] = {}
        checkout_cfg = cfg["checkout"]
        shop = inproc(
            main_ds,
            [
                "shop",
                "--buyers",
                str(checkout_cfg["buyers"]),
                "--orders",
                str(checkout_cfg["buyers"] * checkout_cfg["orders"]),
            ],
        )
        results["shop"] = {k: v for k, v in shop.items() if k not in ("slugs", "password")}

        for ds in datasets:
            log(f"== dataset {ds.label}: uncached stack (STOREFRONT_CACHE_TTL_PAGES=0)")
            gu, nu = start_pair(ds, f"uncached-{ds.label}", uncached=True)
            try:
                if ds is main_ds:
                    servers = step(b, "servers", {}, compare_servers, b, ds, gu, nu, static)
                    comps["servers"] = servers
                    if servers:
                        comps["uncached"] = step(
                            b,
                            "uncached pages",
                            {},
                            compare_uncached,
                            b,
                            gu,
                            nu,
                            shop["product_slug"],
                        )
                        size_runs[ds.label] = servers["nginx→gunicorn"]["listing_uncached"]
                else:
                    size_runs[ds.label] = b.wrk(
                        f"[{ds.label}] listing (uncached)",
                        f"{nu.url}/products/",
                        servers=[nu, gu],
                        expect_headers=MISS,
                    )
                if ds is largest:
                    comps["depth"] = step(b, "depth", {}, compare_depth, b, ds, gu, nu)
            finally:
                nu.stop()
                gu.stop()
            if ds is not main_ds:
                continue
            log(f"== dataset {ds.label}: production stack (page cache on)")
            g, n = start_pair(ds, f"production-{ds.label}")
            session: dict = {}
            try:
                session = step(b, "signed-in session", {}, signed_in, n, shop)
                if session:
                    comps["cached"] = step(
                        b,
                        "cached pages",
                        {},
                        compare_cached,
                        b,
                        ds,
                        g,
                        n,
                        static,
                        shop["product_slug"],
                        session,
                    )
                comps["n_plus_one"] = {"http": step(b, "N+1", {}, compare_n_plus_one, b, g, n)}
                # Last on this stack: it changes stock and bumps the cached pages.
                log("== checkout with concurrent buyers")
                comps["checkout"] = step(b, "checkout", {}, compare_checkout, b, ds, n, shop)
            finally:
                n.stop()
                g.stop()
            log("== worker memory")
            comps["memory"] = step(
                b, "worker memory", {}, compare_memory, b, ds, shop, session.get("cookie")
            )

        first_size = size_runs.get(datasets[0].label)
        comps["sizes"] = {
            "runs": size_runs,
            "p95_vs_10k": {
                label: ratio(run, first_size, "p95_ms") for label, run in size_runs.items()
            },
        }
        log("== workers and worker classes")
        comps["workers"] = step(b, "workers", {}, compare_workers, b, main_ds)

        log(f"== in-process timings on {largest.label} (pagination, dashboard, N+1)")
        timing = step(
            b,
            "in-process timings",
            None,
            inproc,
            largest,
            ["timings", "--calls", str(cfg["calls"]), "--depths", *map(str, cfg["depths"])],
        )
        if timing:
            comps.setdefault("depth", {})["inproc"] = timing["pagination"]
            comps["dashboard"] = {
                "dataset": largest.label,
                "orders": timing["orders"],
                "order_lines": timing["order_lines"],
                **timing["dashboard"],
            }
            comps.setdefault("n_plus_one", {})["inproc"] = timing["n_plus_one"]
    except KeyboardInterrupt:
        results["problems"].append("interrupted (Ctrl-C): partial results")
        b.fail("bench", ["interrupted (Ctrl-C): partial results"])
        log("interrupted: stopping everything")
    except Exception as exc:
        results["problems"].append(f"{type(exc).__name__}: {exc}"[-2000:])
        b.fail("bench", [f"{type(exc).__name__}: {exc}"[-2000:]])
        traceback.print_exc()
    finally:
        PROCESSES.stop_all()
        for ds in datasets:
            try:
                ds.counts["db_size_mb"] = round(ds.db.size_bytes() / 2**20, 1)
            except Exception:
                pass
            ds.db.drop()
        if template:
            template.drop()
        if redis_ok:
            deleted = harness.redis_delete_prefix(REDIS_URL, f"bench{run_id}")
            log(f"deleted {deleted} Redis keys of this run")
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["runs"] = b.runs
    results["failures"] = b.failures
    results["summary"] = summarize(results)
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    import report

    plots = report.plots(results, plots_dir)
    report_path.write_text(report.markdown(results, json_path, plots, TARGETS, report_path.parent))
    log(f"wrote {json_path}, {report_path} in {results['elapsed_s']:.0f} s")
    if results["failures"]:
        log(f"FAILED: {len(results['failures'])} run(s) or measurement(s) failed:")
        for failure in results["failures"]:
            log(f"  {failure['label']}: {'; '.join(failure['problems'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
