# ruff: noqa: E501, SIM105, S110
"""`make bench`: Storefront's benchmark report (bench/REPORT.md, bench/results/, bench/plots/).

    .venv/bin/python bench/run.py                  # quick mode (default): well under 10 minutes
    .venv/bin/python bench/run.py --mode full      # 10k / 100k / 1M products, 1M orders
    make bench [BENCH_MODE=full]

Seeds throwaway PostgreSQL databases (bench_<pid>_*: migrated once into a template, cloned per
size, seeded with `storefront seed`, dropped at the end), starts the stack on free loopback
ports (gunicorn with deploy/gunicorn.conf.py and GUNICORN_* variables; nginx rendered from
deploy/nginx by scripts/render_nginx.py; `storefront runserver`), drives bounded load with wrk
(fixed duration, one connection count) and samples CPU and RSS of every server process
(psutil) during each run. Every figure is reported as a ratio to references measured in the
same run on the same stack: a Django "hello world" view (bench-only URLconf, see
bench/bench_urls.py) behind the same gunicorn and nginx, and nginx serving a static file.

Everything stops by itself: wrk runs for a fixed time, every server runs in its own process
group and is stopped in `finally` blocks, at exit and on SIGTERM/Ctrl-C; the databases are
dropped and the Redis keys (our own prefix) deleted.

The pieces, by topic: modes.py (what --mode sets), dataset.py (the seeded databases and the
servers on them), measure.py (one wrk run with CPU/RSS sampling), comparisons.py (what is
compared over HTTP), targets.py (the headline ratios), report.py (REPORT.md and the plots).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # for harness/

from comparisons import (
    PER_PAGE,
    compare_cache,
    compare_depth,
    compare_n_plus_one,
    compare_servers,
    compare_workers,
)
from dataset import REDIS_URL, Dataset, inproc, prepare, start_pair, static_path
from measure import WRK, Bench, ratio
from modes import CORES, MODES
from targets import TARGETS, summarize

import harness
from harness import PROCESSES, log

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PLOTS_DIR = BENCH_DIR / "plots"
REPORT = BENCH_DIR / "REPORT.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode", choices=sorted(MODES), default=os.environ.get("BENCH_MODE") or "quick"
    )
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
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

        for ds in datasets:
            log(f"== dataset {ds.label}")
            g, n = start_pair(ds, f"main-{ds.label}")
            try:
                if ds is main_ds:
                    comps["servers"] = compare_servers(b, ds, g, n, static)
                    ref = comps["servers"]["nginx→gunicorn"]
                    refs = {
                        "hello": ref["hello"],
                        "static": ref["static"],
                        "static_path": static,
                        "listing_uncached": ref["listing_uncached"],
                    }
                    comps["references"] = {"hello": ref["hello"], "static": ref["static"]}
                    comps["cache"] = compare_cache(b, ds, g, n, refs)
                    comps["n_plus_one"] = {"http": compare_n_plus_one(b, g, n)}
                    size_runs[ds.label] = ref["listing_uncached"]
                else:
                    size_runs[ds.label] = b.wrk(
                        f"[{ds.label}] listing (uncached)",
                        f"{n.url}/products/",
                        servers=[n, g],
                        unique=True,
                    )
                if ds is largest:
                    comps["depth"] = compare_depth(b, ds, g, n)
            finally:
                n.stop()
                g.stop()

        comps["sizes"] = {
            "runs": size_runs,
            "p95_vs_10k": {
                label: ratio(run, size_runs[datasets[0].label], "p95_ms")
                for label, run in size_runs.items()
            },
        }
        log("== workers and worker classes")
        comps["workers"] = compare_workers(b, main_ds, comps["references"]["hello"])

        log(f"== in-process timings on {largest.label} (pagination, dashboard, N+1)")
        timing = inproc(
            largest, ["timings", "--calls", str(cfg["calls"]), "--depths", *map(str, cfg["depths"])]
        )
        comps["depth"]["inproc"] = timing["pagination"]
        comps["dashboard"] = {
            "dataset": largest.label,
            "orders": timing["orders"],
            "order_lines": timing["order_lines"],
            **timing["dashboard"],
        }
        comps["n_plus_one"]["inproc"] = timing["n_plus_one"]
    except KeyboardInterrupt:
        results["problems"].append("interrupted (Ctrl-C): partial results")
        log("interrupted: stopping everything")
    except Exception as exc:
        results["problems"].append(f"{type(exc).__name__}: {exc}"[-2000:])
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
    limited = [r["label"] for r in b.runs if r.get("non_2xx_3xx")]
    if limited:
        results["problems"].append(
            "non-2xx answers during: " + "; ".join(limited) + ". Through nginx these are 429s of "
            "the per-address limiter (limit_req burst=40 in app.conf.template is fixed; with the "
            "rate raised, bursts within one millisecond of nginx's cached clock still exceed it "
            "at tens of thousands of req/s from one address); see each run's error rate"
        )
    results["summary"] = summarize(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    import report

    plots = report.plots(results, PLOTS_DIR)
    REPORT.write_text(report.markdown(results, json_path, plots, TARGETS))
    log(
        f"wrote {json_path.relative_to(harness.REPO_ROOT)}, {REPORT.relative_to(harness.REPO_ROOT)} in {results['elapsed_s']:.0f} s"
    )
    return 1 if results["problems"] and not comps else 0


if __name__ == "__main__":
    sys.exit(main())
