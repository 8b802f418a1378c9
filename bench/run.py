# ruff: noqa: E501, SIM105, S110, RUF005
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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack
from stack import PROCESSES, Database, log

BENCH_DIR = stack.BENCH_DIR
RESULTS_DIR = BENCH_DIR / "results"
PLOTS_DIR = BENCH_DIR / "plots"
REPORT = BENCH_DIR / "REPORT.md"
LUA = BENCH_DIR / "lua" / "report.lua"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CORES = os.cpu_count() or 1
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PER_PAGE = 24

MODES = {
    # A fast self-check of the harness (tiny data, 1 s runs): figures mean little.
    "smoke": {
        "duration": 1,
        "warmup": 1,
        "connections": 8,
        "datasets": [("2k", 2_000, 1_000, 20), ("5k", 5_000, 2_000, 20)],
        "main": "5k",
        "depths": [1, 100, 10_000],
        "workers": [1, 2],
        "calls": 5,
    },
    "quick": {
        "duration": 5,
        "warmup": 1,
        "connections": 32,
        # (label, products, orders, users)
        "datasets": [("10k", 10_000, 20_000, 100), ("100k", 100_000, 200_000, 500)],
        "main": "100k",
        "depths": [1, 100, 1_000, 10_000],
        "workers": sorted({1, 2, CORES, 2 * CORES + 1}),
        "calls": 30,
    },
    "full": {
        "duration": 10,
        "warmup": 2,
        "connections": 32,
        "datasets": [
            ("10k", 10_000, 20_000, 200),
            ("100k", 100_000, 1_000_000, 10_000),
            ("1M", 1_000_000, 1_000_000, 10_000),
        ],
        "main": "100k",
        "depths": [1, 100, 10_000],
        "workers": list(range(1, 2 * CORES + 2)),
        "calls": 100,
    },
}

TARGETS = {
    "uncached_vs_hello": (">=", 0.30, "uncached anonymous listing ≥ 0.30 × hello-world req/s"),
    "app_hit_vs_hello": (">=", 0.75, "app-cache hit listing ≥ 0.75 × hello-world req/s"),
    "micro_hit_vs_static": (">=", 0.50, "nginx microcache hit ≥ 0.5 × nginx static req/s"),
    "p95_largest_vs_10k": ("<=", 1.30, "listing p95 at 1M products ≤ 1.3 × at 10k"),
    "deep_vs_page1": ("<=", 1.30, "page 10,000 p95 ≤ 1.3 × page 1"),
    "dashboard_p95_ms": ("<=", 50.0, "staff dashboard p95 ≤ 50 ms at 1M orders"),
}


# --- sampling -----------------------------------------------------------------------------------


class Sampler:
    """CPU % and RSS of each server process, sampled every `interval` s while a run lasts."""

    def __init__(self, servers: list[stack.Server], interval: float = 0.5) -> None:
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.procs: dict[int, tuple[str, object]] = {}
        for server in servers:
            for pid in server.pids():
                try:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # primes the counter
                    self.procs[pid] = (server.kind, proc)
                except psutil.Error:
                    pass
        self.samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in self.procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for pid, (_, proc) in self.procs.items():
                try:
                    self.samples[pid].append((proc.cpu_percent(None), proc.memory_info().rss))
                except self.psutil.Error:
                    pass

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict:
        per_process = []
        for pid, (kind, _) in self.procs.items():
            rows = self.samples[pid][1:] or self.samples[pid]  # the first sample is a warm-up
            if not rows:
                continue
            per_process.append(
                {
                    "pid": pid,
                    "kind": kind,
                    "cpu_pct_mean": round(sum(r[0] for r in rows) / len(rows), 1),
                    "rss_mb_max": round(max(r[1] for r in rows) / 2**20, 1),
                }
            )
        by_kind: dict[str, dict] = {}
        for row in per_process:
            agg = by_kind.setdefault(row["kind"], {"processes": 0, "cpu_pct": 0.0, "rss_mb": 0.0})
            agg["processes"] += 1
            agg["cpu_pct"] = round(agg["cpu_pct"] + row["cpu_pct_mean"], 1)
            agg["rss_mb"] = round(agg["rss_mb"] + row["rss_mb_max"], 1)
        for agg in by_kind.values():
            agg["rss_mb_per_process"] = round(agg["rss_mb"] / agg["processes"], 1)
        return {"by_kind": by_kind, "per_process": per_process}


# --- wrk ----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.cfg = MODES[mode]
        self.workdir = workdir
        self.runs: list[dict] = []

    def wrk(
        self,
        label: str,
        url: str,
        *,
        servers: list[stack.Server],
        unique: bool = False,
        headers: dict[str, str] | None = None,
        duration: int | None = None,
    ) -> dict:
        """One bounded wrk run (after a short warm-up) with CPU/RSS sampling; returns metrics."""
        duration = duration or self.cfg["duration"]
        env = dict(os.environ, BENCH_UNIQUE="1" if unique else "0")
        nonce = f"bench_nonce=probe-{time.monotonic_ns()}"
        probe_url = url + (("&" if "?" in url else "?") + nonce if unique else "")
        status, probe_headers, body = stack.fetch(probe_url, headers)
        if not unique:  # a second look shows the steady state (cache filled by the first)
            status, probe_headers, body = stack.fetch(url, headers)
        base = [WRK, "-t1", f"-c{self.cfg['connections']}", "--latency", "--timeout", "10s"]
        base += ["-s", str(LUA)]
        for name, value in (headers or {}).items():
            base += ["-H", f"{name}: {value}"]
        subprocess.run(
            [*base, f"-d{self.cfg['warmup']}s", url],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        with Sampler(servers) as sampler:
            done = subprocess.run(
                [*base, f"-d{duration}s", url],
                env=env, capture_output=True, text=True, timeout=duration + 60, check=False,
            )  # fmt: skip
        result = {
            "label": label,
            "url": url,
            "unique_urls": unique,
            "probe": {
                "status": status,
                "bytes": len(body),
                "x_storefront_cache": probe_headers.get("X-Storefront-Cache"),
                "x_cache_status": probe_headers.get("X-Cache-Status"),
            },
            "resources": sampler.summary(),
        }
        match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.M)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
        if done.returncode != 0 or not match or not rps:
            result["error"] = (done.stdout + done.stderr)[-1500:]
            log(f"  {label}: wrk failed: {result['error'][-300:]}")
            self.runs.append(result)
            return result
        raw = json.loads(match.group(1))
        errors = sum(raw[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
        result.update(
            rps=float(rps.group(1)),
            requests=raw["requests"],
            p50_ms=raw["p50_us"] / 1000,
            p90_ms=raw["p90_us"] / 1000,
            p95_ms=raw["p95_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            max_ms=raw["max_us"] / 1000,
            socket_errors=errors,
            non_2xx_3xx=raw["err_status"],
            error_rate=round((errors + raw["err_status"]) / max(1, raw["requests"]), 4),
        )
        log(
            f"  {label}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
            f"p95 {result['p95_ms']:.1f} ms, errors {errors}+{raw['err_status']} "
            f"(probe {status} {result['probe']['x_storefront_cache'] or ''}"
            f"{result['probe']['x_cache_status'] or ''})"
        )
        self.runs.append(result)
        return result


def ratio(a: dict | None, b: dict | None, key: str = "rps") -> float | None:
    if not a or not b or a.get(key) is None or not b.get(key):
        return None
    return round(a[key] / b[key], 3)


# --- the stack for one dataset ------------------------------------------------------------------


class Dataset:
    def __init__(self, label: str, db: Database, env: dict[str, str], workdir: Path) -> None:
        self.label = label
        self.db = db
        self.env = env
        self.workdir = workdir
        self.counts: dict = {}


def start_pair(
    ds: Dataset, name: str, *, microcache: str = "off", **gunicorn
) -> tuple[stack.Server, stack.Server]:
    """gunicorn (GUNICORN_* from the arguments) with nginx in front of it."""
    g = stack.start_gunicorn(ds.env, ds.workdir / f"{name}-gunicorn.log", **gunicorn)
    try:
        n = start_nginx(ds, g, name, microcache)
    except BaseException:
        g.stop()
        raise
    return g, n


def start_nginx(ds: Dataset, g: stack.Server, name: str, microcache: str) -> stack.Server:
    return stack.start_nginx(
        ds.workdir / f"nginx-{name}",
        g.url,
        static_root=Path(ds.env["STATIC_ROOT"]),
        media_root=Path(ds.env["MEDIA_ROOT"]),
        variables={"NGINX_MICROCACHE": microcache},
    )


def static_path(static_root: Path) -> str:
    """A small hashed static file (the site's stylesheet) from the collectstatic manifest."""
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    return "/static/" + manifest["paths"]["css/site.css"]


# --- comparisons --------------------------------------------------------------------------------


def compare_servers(b: Bench, ds: Dataset, g: stack.Server, n: stack.Server, static: str) -> dict:
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
    r = stack.start_runserver(ds.env, ds.workdir / "runserver.log")
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


def compare_cache(b: Bench, ds: Dataset, g: stack.Server, n: stack.Server, refs: dict) -> dict:
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
        stack.fetch(f"{m.url}/products/")
        _, headers, _ = stack.fetch(f"{m.url}/products/")
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


def compare_depth(b: Bench, ds: Dataset, g: stack.Server, n: stack.Server) -> dict:
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
        status, _, _ = stack.fetch(f"{n.url}/products/?page={depth}")
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
        status, _, _ = stack.fetch(url)
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


def compare_n_plus_one(b: Bench, g: stack.Server, n: stack.Server) -> dict:
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


def inproc(ds: Dataset, args: list[str], timeout: float = 900) -> dict:
    done = subprocess.run(
        [stack.PYTHON, str(BENCH_DIR / "inproc.py"), *args],
        cwd=stack.REPO_ROOT, env=ds.env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"inproc {args[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main ---------------------------------------------------------------------------------------


def prepare(mode: str, workdir: Path, run_id: str) -> tuple[list[Dataset], Database]:
    cfg = MODES[mode]
    static_root = workdir / "static"
    template = Database(f"bench_{run_id}_template").create()
    base_env = stack.app_env(
        database_url=template.url,
        var_dir=workdir / "var-template",
        static_root=static_root,
        redis_url=REDIS_URL if stack.redis_available(REDIS_URL) else None,
        cache_prefix=f"bench{run_id}t",
        settings_module="bench_settings",
    )
    log("migrating a template database and collecting static files")
    stack.storefront_command(["migrate", "--noinput", "--verbosity", "0"], base_env)
    stack.storefront_command(["collectstatic", "--noinput", "--verbosity", "0"], base_env)
    datasets = []
    for label, products, orders, users in cfg["datasets"]:
        db = Database(f"bench_{run_id}_{label.lower()}")
        db._admin(f"CREATE DATABASE {{}} TEMPLATE {template.name}")
        env = dict(base_env)
        env.update(
            DATABASE_URL=db.url,
            STOREFRONT_VAR_DIR=str(workdir / f"var-{label}"),
            MEDIA_ROOT=str(workdir / f"var-{label}" / "media"),
            PRIVATE_MEDIA_ROOT=str(workdir / f"var-{label}" / "private"),
            STOREFRONT_CACHE_KEY_PREFIX=f"bench{run_id}{label.lower()}",
        )
        ds = Dataset(label, db, env, workdir / f"run-{label}")
        ds.workdir.mkdir(parents=True, exist_ok=True)
        datasets.append(ds)
        started = time.monotonic()
        log(f"seeding {label}: {products:,} products, {orders:,} orders, {users:,} users")
        stack.seed(env, products=products, orders=orders, users=users)
        ds.counts = {
            "products": products,
            "orders": orders,
            "users": users,
            "seed_s": round(time.monotonic() - started, 1),
        }
    return datasets, template


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
    workdir = stack.temp_dir(f"storefront-bench-{stamp}-")
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
            cwd=stack.REPO_ROOT,
        ).stdout.strip(),
        "comparisons": {},
        "problems": [],
    }
    datasets: list[Dataset] = []
    template = None
    redis_ok = stack.redis_available(REDIS_URL)
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
            deleted = stack.redis_delete_prefix(REDIS_URL, f"bench{run_id}")
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
        f"wrote {json_path.relative_to(stack.REPO_ROOT)}, {REPORT.relative_to(stack.REPO_ROOT)} in {results['elapsed_s']:.0f} s"
    )
    return 1 if results["problems"] and not comps else 0


def summarize(results: dict) -> dict:
    """The headline ratios against the targets (None when not measured)."""
    c = results["comparisons"]
    refs = c.get("references", {})
    cache = c.get("cache", {})
    out: dict = {}
    out["uncached_vs_hello"] = ratio(cache.get("uncached"), refs.get("hello"))
    out["app_hit_vs_hello"] = ratio(cache.get("app_hit"), refs.get("hello"))
    micro = cache.get("micro_hit", {})
    out["micro_hit_vs_static"] = (
        ratio(micro, cache.get("static_micro_nginx") or refs.get("static"))
        if micro.get("rps")
        else None
    )
    sizes = c.get("sizes", {}).get("p95_vs_10k", {})
    if sizes:
        largest = list(sizes)[-1]
        out["p95_largest_vs_10k"] = sizes[largest]
        out["p95_largest_label"] = largest
    depth_http = c.get("depth", {}).get("http", {})
    keyset = [k for k in depth_http if k.startswith("keyset") and depth_http[k].get("p95_ms")]
    if keyset and depth_http.get("page 1"):
        deepest = max(keyset, key=lambda k: int(k.split()[-1]))
        out["deep_vs_page1"] = ratio(depth_http[deepest], depth_http["page 1"], "p95_ms")
        out["deep_label"] = deepest
    dash = c.get("dashboard", {})
    if dash.get("denormalized"):
        out["dashboard_p95_ms"] = dash["denormalized"]["p95_ms"]
        out["dashboard_request_time_p95_ms"] = dash["request_time"]["p95_ms"]
        out["dashboard_orders"] = dash.get("orders")
    return out


if __name__ == "__main__":
    sys.exit(main())
