# ruff: noqa: E501
"""`make loadtest`: run loadtest/locustfile.py headless, bounded in time, reports in loadtest/results/.

    .venv/bin/python loadtest/run.py                     # steady shape, 60 s, own stack
    .venv/bin/python loadtest/run.py --shape peak        # one minute at the bench's sustainable rate
    .venv/bin/python loadtest/run.py --shape peak --rate 150   # ... at a rate of your choice
    .venv/bin/python loadtest/run.py --shape large       # 1,000,000 products, deep pages, 60 s
    .venv/bin/python loadtest/run.py --shape stress      # ramp to the breaking point
    .venv/bin/python loadtest/run.py --shape browse      # 100k products, deep pages
    LOADTEST_HOST=http://127.0.0.1:8000 .venv/bin/python loadtest/run.py   # a running stack

Without LOADTEST_HOST it starts its own stack on loopback: a throwaway PostgreSQL database
(`loadtest_<pid>`, migrated, seeded with `storefront seed`, dropped afterwards), Redis with a
key prefix of its own (keys deleted afterwards), gunicorn (deploy/gunicorn.conf.py: one sync
worker per core) on a free port, and nginx in front of it rendered from deploy/nginx like every
other target: the load goes through nginx, as users' requests do (static files, compression,
microcache, security headers, limiter bookkeeping). Every Locust user comes from 127.0.0.1, so
nginx's per-address limits are raised for the run to LOADTEST_LIMITS below (with the
production 5 logins a minute per address, nearly every simulated login would be a 429); the
summary JSON states the limits used.

Only 2xx answers count. The locustfile records every request (final status, response time);
the summary counts by status: any other status (a 404, a 409, a 429, a 5xx) or no answer is a
failure and never throughput; rates are 2xx answers per second, percentiles cover every request.

Shapes:
- peak: one minute at a fixed request rate, all users together (`--rate N`, or by default the
  rate `peak_rate_from_bench` derives from the newest committed bench result, see there), after
  a warm-up; the summary states the target, the 2xx rate reached, p50/p95/p99, failures, and
  whether the rate was sustained (SUSTAINED).
- large: the browse shape (deep keyset pages, search, API cursors) on 1,000,000 products, 60 s;
  the summary states the seeding time.
- stress: users added step by step until more than 1 % fail or p95 passes 1 s. Meanwhile the
  stack's resources are sampled once a second (Sampler); <stamp>-stress.json holds the
  breaking point (users, 2xx req/s) and which resource reached its limit first
  (`saturation_verdict`), with the samples.
Every shape run on our own stack is sampled the same way; its summary has the resources' mean
and maximum.

Writes loadtest/results/<timestamp>-<shape>-summary.json, Locust's <timestamp>-<shape>_stats.csv,
_failures.csv, _exceptions.csv, _stats_history.csv and an HTML report (the last two not kept
in git); the stress shape also <timestamp>-stress.json.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import harness  # noqa: E402
from harness import PROCESSES, Database, log  # noqa: E402

RESULTS = REPO_ROOT / "loadtest" / "results"
LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
BENCH_RESULTS = REPO_ROOT / "bench" / "results"
REDIS_URL = os.environ.get("LOADTEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# nginx's per-address limits during the run (all Locust users share one address).
LOADTEST_LIMITS = {
    "NGINX_RATE_AUTH": "60000r/m",
    "NGINX_RATE_API": "100000r/s",
    "NGINX_RATE_GENERAL": "100000r/s",
    "NGINX_CONN_PER_IP": "10000",
}
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"
# (products, orders, users) seeded per shape.
SIZES = {
    "steady": (2_000, 5_000, 200),
    "peak": (2_000, 5_000, 200),
    "stress": (2_000, 5_000, 200),
    "browse": (100_000, 50_000, 500),
    "large": (1_000_000, 50_000, 500),
}
# The bench figures that bound the peak shape's rate (comparisons.<section>.<key> of a bench
# result): the pages the Locust mix asks for most, each measured alone by wrk through nginx →
# gunicorn with every answer rendered (uncached listing, uncached product page) or rendered
# per visitor (signed-in listing). See peak_rate_from_bench.
PEAK_BASIS = (("uncached", "listing"), ("uncached", "product"), ("cached", "signed_in"))
# Peak users: one per this many requests/s of the target. A user makes one request at a time:
# 3 req/s each holds the rate while answers average under 333 ms (the pages take 3-150 ms
# unloaded), and no more users log in during the warm-up than that needs.
PEAK_REQUESTS_PER_USER = 3
# The peak rate counts as sustained when the measured minute meets all three.
SUSTAINED = {"min_rate_fraction": 0.95, "max_p95_ms": 1000, "max_error_rate": 0.01}
# A resource is at its limit when its mean over SATURATION_WINDOW samples (one a second) is at
# this fraction of the limit: the mix is bursty (a login hashes its password for half a second
# of CPU), so single seconds at 100 % or a short backlog come and go long before saturation;
# and a saturated machine still shows a few % idle in one-second CPU samples.
SATURATION_THRESHOLD = 0.90
SATURATION_WINDOW = 10


# --- the peak shape's rate, from the bench ------------------------------------------------------


def committed_bench_results(directory: Path = BENCH_RESULTS) -> list[Path]:
    """The bench result files committed in git, newest first (their names are timestamps);
    every *.json of `directory` when git cannot tell."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.json"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        names = [name for name in done.stdout.split("\0") if name and "/" not in name]
    except (OSError, subprocess.SubprocessError):
        names = []
    paths = [directory / name for name in names] or list(directory.glob("*.json"))
    return sorted(paths, key=lambda p: p.name, reverse=True)


def derive_peak_rate(bench: dict, source: str) -> dict:
    """The peak shape's request rate from one bench result (bench/results/<stamp>.json).

    The bench measures one page at a time (wrk, 32 connections, through nginx → gunicorn);
    the Locust mix is many pages. Its cheap answers (app-cache hits, static files, at
    1,500-30,000 req/s) would allow far more, but a mix cannot honestly be run faster than its
    frequent pages that are rendered: the uncached listing (every sort, category and page
    combination is rendered once before the page cache holds it, searches are never cached),
    the uncached product page and the signed-in listing (rendered per visitor). The rate is the
    lowest of those three, as measured: ValueError when the result lacks any of them or one
    of them failed (a figure of a failed run is no figure).
    """
    comparisons = bench.get("comparisons") or {}
    basis = {}
    for section, key in PEAK_BASIS:
        run = (comparisons.get(section) or {}).get(key)
        if not isinstance(run, dict) or run.get("rps") is None:
            raise ValueError(f"{source}: no comparisons.{section}.{key} figure")
        if run.get("ok") is False or run.get("non_2xx"):
            raise ValueError(f"{source}: comparisons.{section}.{key} is a failed run")
        basis[f"{section}.{key}"] = {
            "label": run.get("label", key),
            "rate_2xx": run["rps"],
            "p95_ms": run.get("p95_ms"),
        }
    bound = min(basis, key=lambda name: basis[name]["rate_2xx"])
    machine = bench.get("machine") or {}
    return {
        "rate": math.floor(basis[bound]["rate_2xx"]),
        "source": source,
        "bench_timestamp": bench.get("timestamp"),
        "bench_commit": bench.get("git"),
        "bench_load": machine.get("wrk"),
        "bench_loadavg_start_end": [machine.get("loadavg_start"), machine.get("loadavg_end")],
        "bounded_by": f"{basis[bound]['label']} ({bound}): {basis[bound]['rate_2xx']} req/s",
        "basis": basis,
        "method": "the lowest 2xx rate of the bench's rendered pages the Locust mix asks for most "
        "(uncached listing, uncached product page, signed-in listing), each measured alone "
        "through nginx → gunicorn; cached answers are faster, so the mix is held to its "
        "rendered pages' rate",
    }


def peak_rate_from_bench(directory: Path = BENCH_RESULTS) -> dict:
    """derive_peak_rate on the newest committed bench result that has the three figures."""
    problems = []
    for path in committed_bench_results(directory):
        source = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
        try:
            return derive_peak_rate(json.loads(path.read_text()), source)
        except (ValueError, OSError) as exc:
            problems.append(str(exc))
    raise ValueError("no bench result to derive the peak rate from: " + "; ".join(problems))


# --- summaries of the locustfile's records ------------------------------------------------------


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _latencies(rows: list[list]) -> dict:
    ordered = sorted(r[1] for r in rows)
    return {
        "p50_ms": percentile(ordered, 0.50),
        "p95_ms": percentile(ordered, 0.95),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] if ordered else None,
    }


def _statuses(rows: list[list]) -> dict[str, int]:
    counts = Counter(str(r[2]) if r[2] else "no answer" for r in rows)
    return dict(sorted(counts.items()))


def summarize_records(
    records: list[list], start: float | None = None, end: float | None = None
) -> dict:
    """Counts, 2xx rate and latency percentiles of the requests that ended in [start, end).

    A record is [end time (epoch s), response time ms, final status (0: no answer), success
    (1 only for a 2xx the task did not mark failed), name]. Only successes are throughput;
    everything else is a failure, counted by status. Percentiles cover every request (a fast
    429 would otherwise flatter them by leaving). Without bounds: from the first to the last
    request.
    """
    rows = [r for r in records if (start is None or r[0] >= start) and (end is None or r[0] < end)]
    if start is None or end is None:
        first = min((r[0] - r[1] / 1000 for r in rows), default=0.0)
        last = max((r[0] for r in rows), default=0.0)
        start = first if start is None else start
        end = last if end is None else end
    seconds = max(end - start, 1e-9)
    ok = sum(1 for r in rows if r[3])
    by_name: dict[str, list[list]] = defaultdict(list)
    for r in rows:
        by_name[r[4]].append(r)
    return {
        "seconds": round(seconds, 1),
        "requests": len(rows),
        "ok_2xx": ok,
        "failures": len(rows) - ok,
        "error_rate": round((len(rows) - ok) / len(rows), 4) if rows else 0.0,
        "rate_2xx": round(ok / seconds, 1),
        "rate_all": round(len(rows) / seconds, 1),
        **_latencies(rows),
        "statuses": _statuses(rows),
        "endpoints": {
            name: {
                "requests": len(group),
                "ok_2xx": sum(1 for r in group if r[3]),
                "failures": sum(1 for r in group if not r[3]),
                **_latencies(group),
                "statuses": _statuses(group),
            }
            for name, group in sorted(by_name.items())
        },
    }


def sustained(summary: dict, target: float) -> dict:
    """Whether a peak minute held its target rate (SUSTAINED), with each criterion."""
    checks = {
        "rate_2xx >= 95% of target": summary["rate_2xx"] >= SUSTAINED["min_rate_fraction"] * target,
        "p95 <= 1000 ms": summary["p95_ms"] is not None
        and summary["p95_ms"] <= SUSTAINED["max_p95_ms"],
        "error rate <= 1%": summary["error_rate"] <= SUSTAINED["max_error_rate"],
    }
    return {"sustained": all(checks.values()), "checks": checks}


def locust_totals(stats_csv: Path) -> dict:
    """Locust's own aggregated counts (its CSV), a cross-check of the records."""
    try:
        with stats_csv.open() as f:
            agg = next((r for r in csv.DictReader(f) if r["Name"] == "Aggregated"), None)
    except OSError:
        return {}
    if not agg:
        return {}
    return {"requests": int(agg["Request Count"]), "failures": int(agg["Failure Count"])}


# --- resources during the run -------------------------------------------------------------------

# What each resource is judged by over a window of samples: (what it is, a check giving the
# window's mean utilisation = value / limit, and whether it is at its limit). `limits` is
# Sampler.limits().
Check = Callable[[list[dict], dict], tuple[float, bool]]


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _cpu_check(window: list[dict], limits: dict) -> tuple[float, bool]:
    used = _mean(s["cpu_pct"]["machine"] for s in window) / limits["cpu_pct"]
    return used, used >= SATURATION_THRESHOLD


def _workers_check(window: list[dict], limits: dict) -> tuple[float, bool]:
    used = _mean(s["workers_busy"] for s in window) / limits["workers"]
    # Busy nearly all the time, and connections waiting for a worker on average.
    return used, used >= SATURATION_THRESHOLD and _mean(s["accept_queue"] for s in window) >= 1


def _db_check(window: list[dict], limits: dict) -> tuple[float, bool]:
    used = _mean(s["server_connections"] for s in window) / limits["max_connections"]
    return used, used >= SATURATION_THRESHOLD


def _locust_check(window: list[dict], limits: dict) -> tuple[float, bool]:
    used = _mean(s["cpu_pct"]["locust"] for s in window) / limits["locust_cpu_pct"]
    return used, used >= SATURATION_THRESHOLD


RESOURCE_CHECKS: dict[str, tuple[str, Check]] = {
    "cpu": (
        "CPU: the whole machine's busy time (every process, Locust's too) against cores × 100 %",
        _cpu_check,
    ),
    "workers": (
        "gunicorn workers: the sync workers running or waiting for a CPU (schedstat) against "
        "their number, with connections waiting in the listen backlog",
        _workers_check,
    ),
    "database_connections": (
        "PostgreSQL connections: client backends on the server against max_connections",
        _db_check,
    ),
    "load_generator": (
        "Locust's own CPU (one process, one core at most): at its limit the client, not the "
        "stack, sets the pace",
        _locust_check,
    ),
}

CPU_BOUND = (
    "the workers busy and the machine's CPU full within the same {window} s: the workers are "
    "CPU-bound (they spent {share:.0%} of their busy time waiting for a CPU), so more workers "
    "would only share the same cores; cheaper requests, fewer other processes on the cores "
    "(Locust {locust:.0f} %, nginx {nginx:.0f} %, PostgreSQL {postgres:.0f} %) or more cores "
    "would help"
)


def saturation_reading(first: str | None, together: list[str], at: dict | None) -> str:
    """What the first saturated resource says, from its window's means (`at`)."""
    if first is None or at is None:
        return "no resource stayed at its limit: the stop came from latency or errors alone"
    cpu = at["cpu_pct"]
    share = at["workers_cpu_wait"] / at["workers_busy"] if at["workers_busy"] else 0.0
    if {first, *together} >= {"cpu", "workers"}:
        return CPU_BOUND.format(window=SATURATION_WINDOW, share=share, **cpu)
    if first == "workers":
        if share >= 0.2:  # a one-second CPU average hides contention within the second
            return (
                f"every worker busy with a backlog while the machine's CPU averaged "
                f"{cpu['machine']:.0f} %, but the workers spent {share:.0%} of their busy time "
                "waiting for a CPU: the cores were the constraint all the same"
            )
        return (
            "every worker busy with a backlog while the CPU had room: requests waited on "
            "something other than CPU (database, Redis, I/O); more workers or threads could help"
        )
    if first == "cpu":
        return (
            "the machine's CPU ran out before the workers were saturated: the cores went to the "
            f"workers ({cpu['gunicorn']:.0f} %) and the other processes (Locust "
            f"{cpu['locust']:.0f} %, nginx {cpu['nginx']:.0f} %, PostgreSQL "
            f"{cpu['postgres']:.0f} %, others {cpu['other']:.0f} %)"
        )
    if first == "database_connections":
        return "PostgreSQL's max_connections ran out first"
    return (
        "Locust's one process used a whole core: the client set the pace, the stack's "
        "breaking point is beyond this measurement"
    )


def window_means(window: list[dict]) -> dict:
    """The figures of a window of samples: means, the backlog's maximum, users at both ends."""
    return {
        "from_s": window[0]["s"],
        "to_s": window[-1]["s"],
        "users": [window[0].get("users"), window[-1].get("users")],
        "rate_2xx": round(_mean(s.get("rate_2xx", 0) for s in window), 1),
        "cpu_pct": {
            kind: round(_mean(s["cpu_pct"][kind] for s in window), 1)
            for kind in window[0]["cpu_pct"]
        },
        "workers_busy": round(_mean(s["workers_busy"] for s in window), 2),
        "workers_cpu_wait": round(_mean(s["workers_cpu_wait"] for s in window), 2),
        "accept_queue": round(_mean(s["accept_queue"] for s in window), 1),
        "accept_queue_max": max(s["accept_queue"] for s in window),
        "db_connections": round(_mean(s["db_connections"] for s in window), 1),
        "server_connections": round(_mean(s["server_connections"] for s in window), 1),
    }


def saturation_verdict(
    samples: list[dict], limits: dict, until: float | None = None, window: int = SATURATION_WINDOW
) -> dict:
    """Which resource reached its limit first, from samples taken once a second.

    Only samples up to `until` (epoch s, the moment the stop condition tripped) count. Each
    resource of RESOURCE_CHECKS is judged on every run of `window` consecutive samples (all of
    them when there are fewer): it reached its limit at the first window whose mean is there.
    The first resource is the one whose window began earliest (ties: the order of
    RESOURCE_CHECKS); `together_with` names those that reached theirs within the same window
    length. None may have reached it: `first` is None and `closest` names the highest mean
    utilisation seen. The first window's figures (`at_first`) and a reading are included.
    """
    judged = [s for s in samples if until is None or s["t"] <= until]
    size = max(1, min(window, len(judged)))
    windows = [judged[i : i + size] for i in range(len(judged) - size + 1)] if judged else []
    resources: dict[str, dict] = {}
    starts: dict[str, int | None] = {}
    for name, (what, check) in RESOURCE_CHECKS.items():
        starts[name] = None
        peak = 0.0
        for index, group in enumerate(windows):
            used, at_limit = check(group, limits)
            peak = max(peak, used)
            if at_limit and starts[name] is None:
                starts[name] = index
        resources[name] = {
            "what": what,
            "at_limit_from_s": judged[starts[name]]["s"] if starts[name] is not None else None,
            "max_utilisation": round(peak, 3),
        }
    reached = [name for name, index in starts.items() if index is not None]
    first = min(reached, key=lambda name: starts[name]) if reached else None
    together = [
        name
        for name in reached
        if first and name != first and starts[name] - starts[first] < size  # type: ignore[operator]
    ]
    at_first = window_means(windows[starts[first]]) if first else None  # type: ignore[index]
    closest = max(RESOURCE_CHECKS, key=lambda name: resources[name]["max_utilisation"])
    return {
        "first": first,
        "first_what": resources[first]["what"] if first else None,
        "together_with": together,
        "reading": saturation_reading(first, together, at_first),
        "at_first": at_first,
        "closest": None if first else closest,
        "resources": resources,
        "samples_judged": len(judged),
        "rule": f"a resource is at its limit when its mean over {size} consecutive samples (one "
        f"a second) reaches {SATURATION_THRESHOLD:.0%} of the limit (workers: also a backlog "
        "of at least one connection on average)",
    }


def resource_summary(
    samples: list[dict], start: float | None = None, end: float | None = None
) -> dict:
    """Mean and maximum of each sampled figure over [start, end] (epoch s)."""
    window = [
        s for s in samples if (start is None or s["t"] >= start) and (end is None or s["t"] <= end)
    ]
    if not window:
        return {}
    series: dict[str, list[float]] = defaultdict(list)
    for s in window:
        for kind, value in s["cpu_pct"].items():
            series[f"cpu_pct.{kind}"].append(value)
        for key in ("workers_busy", "workers_cpu_wait", "accept_queue", "upstream_connections", "db_connections",
                    "db_active", "server_connections", "db_parallel_workers"):  # fmt: skip
            series[key].append(s[key])
    return {
        key: {"mean": round(sum(v) / len(v), 1), "max": round(max(v), 1)}
        for key, v in series.items()
    }


def join_samples(samples: list[dict], records: list[list], users: list[list]) -> None:
    """Add to each sample the users running then and the 2xx answers of the second before it."""
    ok_per_second = Counter(int(r[0]) for r in records if r[3])
    for sample in samples:
        sample["rate_2xx"] = ok_per_second.get(int(sample["t"]) - 1, 0)
        sample["users"] = next((u for t, u in reversed(users) if t <= sample["t"]), 0)


def tcp_listen_state(port: int, table: Iterable[str]) -> tuple[int, int]:
    """From /proc/net/tcp lines, for the server side of `port` (local port `port`): the
    listening socket's accept queue (its rx_queue: connections the kernel completed that no
    worker accepted yet) and the connections established (queued or being served)."""
    suffix = f":{port:04X}"
    queue = established = 0
    for line in table:
        fields = line.split()
        if len(fields) < 4 or not fields[1].endswith(suffix):
            continue
        if fields[3] == "0A":  # LISTEN
            queue = int(fields[4].split(":")[1], 16)
        elif fields[3] == "01":  # ESTABLISHED
            established += 1
    return queue, established


def schedstat(pid: int) -> tuple[int, int] | None:
    """Nanoseconds process `pid` spent on a CPU and waiting in a run queue for one
    (/proc/<pid>/schedstat); None once it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            on_cpu, waiting, _slices = f.read().split()
    except (OSError, ValueError):
        return None
    return int(on_cpu), int(waiting)


def _cpu_total(times: object) -> float:
    """All of /proc/stat's CPU time but guest time (already counted in user and nice); steal
    (the hypervisor's) counts as busy: those cycles were not ours to use."""
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return sum(getattr(times, name, 0.0) for name in fields)


class Sampler(threading.Thread):
    """Once a second: CPU % per process kind, gunicorn workers busy, PostgreSQL connections.

    - CPU: user + system time per process (psutil), summed per kind: gunicorn workers, nginx
      (master and workers), postgres (the backends connected to our database), redis (the
      shared server, every client's work), locust; and the machine's busy time (/proc/stat:
      everything, other users of these cores included), in % of one core.
    - Workers: an idle sync worker sleeps in select() on the listening socket; the moment a
      connection arrives one of them accepts it. Connections nginx opened that no worker
      accepted yet (the listening socket's accept queue in /proc/net/tcp) therefore mean every
      worker is occupied: with at least as many waiting as there are workers, the workers are
      saturated. How busy they are: per worker, the share of the second it ran on a CPU or
      waited for one (/proc/<pid>/schedstat), summed (`workers_busy`, 0 to the worker count;
      time blocked on PostgreSQL or Redis replies is not in it), and the part of that spent
      waiting for a CPU (`workers_cpu_wait`: CPU contention). Not the app's /metrics: it has
      no in-flight gauge, and at saturation that request would itself wait for a worker. Not a
      snapshot of the workers' open sockets either: a request of a few milliseconds is over
      before /proc/net/tcp (tens of thousands of TIME_WAIT lines) is read.
    - PostgreSQL: pg_stat_activity, client backends of our database (all, active) and on the
      whole server (what max_connections limits; the sampler's own connection, to the
      `postgres` database, is one of them), and the parallel query workers of our database
      (not connections; their CPU counts as postgres).
    """

    def __init__(
        self,
        *,
        gunicorn: harness.Server,
        nginx: harness.Server,
        locust_pid: int,
        database: Database,
        redis_url: str | None,
        interval: float = 1.0,
    ) -> None:
        super().__init__(daemon=True, name="loadtest-sampler")
        import psutil
        import psycopg

        self.psutil = psutil
        self.gunicorn = gunicorn
        self.nginx = nginx
        self.locust_pid = locust_pid
        self.database = database
        self.interval = interval
        self.port = int(gunicorn.netloc.rsplit(":", 1)[1])
        self.samples: list[dict] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._processes: dict[int, object] = {}
        self._cpu: dict[int, float] = {}
        self._sched: dict[int, tuple[int, int]] = {}
        self._pg = psycopg.connect(database.admin_url, autocommit=True, connect_timeout=5)
        row = self._pg.execute(
            "SELECT current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int"
        ).fetchone()
        self.max_connections, self.reserved_connections = row
        self.redis_pid = self._redis_pid(redis_url)
        self.workers = len(gunicorn.pids())
        self.started = time.time()

    @staticmethod
    def _redis_pid(url: str | None) -> int | None:
        if not url:
            return None
        try:
            import redis

            return int(
                redis.Redis.from_url(url, socket_connect_timeout=1).info("server")["process_id"]
            )
        except Exception:
            return None

    def limits(self) -> dict:
        cores = self.psutil.cpu_count() or 1
        return {
            "cores": cores,
            "cpu_pct": cores * 100,
            "workers": self.workers,
            "gunicorn_cpu_pct": self.workers * 100,
            "locust_cpu_pct": 100,
            "max_connections": self.max_connections,
            "superuser_reserved_connections": self.reserved_connections,
            "app_database_connections": self.workers,
            "app_database_connections_why": "one persistent connection per sync worker "
            "(DATABASE_CONN_MAX_AGE 60 s): the app never opens more than its worker count, "
            "far below max_connections",
        }

    def _cpu_seconds(self, pid: int) -> float | None:
        proc = self._processes.get(pid)
        try:
            if proc is None:
                proc = self._processes[pid] = self.psutil.Process(pid)
            times = proc.cpu_times()
            return times.user + times.system
        except self.psutil.Error:
            self._processes.pop(pid, None)
            return None

    def _kind_pct(self, pids: Iterable[int], seconds: float, seen: dict[int, float]) -> float:
        used = 0.0
        for pid in pids:
            now = self._cpu_seconds(pid)
            if now is None:
                continue
            before = self._cpu.get(pid)
            seen[pid] = now
            if before is not None:
                used += max(0.0, now - before)
        return round(100 * used / seconds, 1)

    def _children(self, pid: int, include_self: bool) -> list[int]:
        try:
            parent = self.psutil.Process(pid)
            return [c.pid for c in parent.children(recursive=True)] + (
                [pid] if include_self else []
            )
        except self.psutil.Error:
            return []

    def sample(self, seconds: float, machine_pct: float) -> dict:
        db = self._pg.execute(
            "SELECT count(*) FILTER (WHERE datname = %(db)s AND backend_type = 'client backend'), "
            "count(*) FILTER (WHERE datname = %(db)s AND backend_type = 'client backend' "
            "AND state = 'active'), "
            "count(*) FILTER (WHERE backend_type = 'client backend'), "
            "coalesce(array_agg(pid) FILTER (WHERE datname = %(db)s), '{}'), "
            "count(*) FILTER (WHERE datname = %(db)s AND backend_type = 'parallel worker') "
            "FROM pg_stat_activity",
            {"db": self.database.name},
        ).fetchone()
        workers = self.gunicorn.pids()
        with open("/proc/net/tcp") as table:
            queue, established = tcp_listen_state(self.port, table)
        busy = cpu_wait = 0.0
        sched: dict[int, tuple[int, int]] = {}
        for pid in workers:
            now_sched = schedstat(pid)
            if now_sched is None:
                continue
            sched[pid] = now_sched
            before = self._sched.get(pid)
            if before is not None:
                busy += (sum(now_sched) - sum(before)) / (seconds * 1e9)
                cpu_wait += (now_sched[1] - before[1]) / (seconds * 1e9)
        self._sched = sched
        seen: dict[int, float] = {}
        cpu = {
            "gunicorn": self._kind_pct(workers, seconds, seen),
            "nginx": self._kind_pct(self._children(self.nginx.proc.pid, True), seconds, seen),
            "postgres": self._kind_pct(db[3], seconds, seen),
            "redis": self._kind_pct([self.redis_pid] if self.redis_pid else [], seconds, seen),
            "locust": self._kind_pct(self._children(self.locust_pid, True), seconds, seen),
            "machine": machine_pct,
        }
        cpu["other"] = round(
            max(0.0, machine_pct - sum(v for k, v in cpu.items() if k != "machine")), 1
        )
        self._cpu = seen
        now = time.time()
        return {
            "t": round(now, 2),
            "s": round(now - self.started, 1),
            "cpu_pct": cpu,
            "workers_busy": round(busy, 2),
            "workers_cpu_wait": round(cpu_wait, 2),
            "accept_queue": queue,
            "upstream_connections": established,
            "db_connections": db[0],
            "db_active": db[1],
            "server_connections": db[2],
            "db_parallel_workers": db[4],
        }

    def run(self) -> None:
        cores = self.psutil.cpu_count() or 1
        last_times = self.psutil.cpu_times()
        last = time.monotonic()
        primed = False  # the first sample only reads the processes' CPU times
        while not self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - last))):
            now = time.monotonic()
            times = self.psutil.cpu_times()
            total = _cpu_total(times) - _cpu_total(last_times)
            idle = (times.idle + times.iowait) - (last_times.idle + last_times.iowait)
            machine = round(100 * cores * (total - idle) / total, 1) if total > 0 else 0.0
            try:
                sample = self.sample(now - last, machine)
                if primed:
                    self.samples.append(sample)
                primed = True
            except Exception as exc:  # a sample lost is reported, the run goes on
                if len(self.errors) < 20:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            last, last_times = now, times

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        with contextlib.suppress(Exception):
            self._pg.close()


# --- the run ------------------------------------------------------------------------------------


def stress_report(
    run: dict, records: list[list], samples: list[dict], limits: dict, step_seconds: float
) -> dict:
    """<stamp>-stress.json: the breaking point and what reached its limit first.

    The breaking point is the users running when the stop condition tripped and what the
    10 s before it measured (2xx rate, p95, errors: the records, like Locust's rolling p95
    window). Saturation is judged on the samples from the end of the first step (before it the
    first users' logins arrive together, and the stop condition is not judged either) up to
    that moment."""
    verdict = run.get("verdict") or {}
    stopped_at = verdict.get("stopped_at")
    last = summarize_records(records, stopped_at - 10, stopped_at) if stopped_at else {}
    judged = [s for s in samples if s["s"] >= step_seconds]
    saturation = saturation_verdict(judged, limits, until=stopped_at) if judged else None
    broke = bool(verdict) and not str(verdict.get("reason", "")).startswith("time limit")
    return {
        "stop_condition": "checked every 5 s from the end of the first step: more than 1 % of "
        "the answers since the last check not 2xx, or p95 of the last 10 s (Locust's rolling "
        "window) above 1 s",
        "broke": broke,
        "reason": verdict.get("reason"),
        "breaking_point": {
            "users": verdict.get("users_reached"),
            "run_time_s": verdict.get("run_time_s"),
            "last_10_s": {
                k: last.get(k) for k in ("rate_2xx", "error_rate", "p50_ms", "p95_ms", "statuses")
            },
        },
        "saturated_first": saturation,
        "limits": limits,
        "verdict": verdict,
        "samples": samples,
    }


def describe_stress(report: dict) -> str:
    point = report["breaking_point"]
    last = point["last_10_s"]
    text = (
        f"{report['reason']}: {'breaking point' if report['broke'] else 'reached'} "
        f"{point['users']} users, {last['rate_2xx']} req/s (2xx) and p95 {last['p95_ms']} ms "
        f"over the last 10 s"
    )
    saturation = report.get("saturated_first")
    if saturation and saturation["first"]:
        at = saturation["at_first"]
        reached = " and ".join([saturation["first"], *saturation["together_with"]])
        text += (
            f"; first at its limit: {reached}, from {at['from_s']} s ({at['users'][0]} users; "
            f"means over {at['from_s']}-{at['to_s']} s: {at['rate_2xx']} req/s, CPU "
            f"{at['cpu_pct']}, workers busy {at['workers_busy']}/{report['limits']['workers']} "
            f"({at['workers_cpu_wait']} of it waiting for a CPU), backlog {at['accept_queue']} "
            f"(max {at['accept_queue_max']}), PostgreSQL {at['server_connections']}/"
            f"{report['limits']['max_connections']} connections, {at['db_connections']} ours). "
            f"{saturation['reading']}"
        )
    elif saturation:
        text += f"; no resource at its limit, closest: {saturation['closest']}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", choices=sorted(SIZES), default=os.environ.get("SHAPE") or "steady"
    )
    parser.add_argument("--host", default=os.environ.get("LOADTEST_HOST", ""))
    parser.add_argument(
        "--rate", type=float, help="peak: requests/s (default: derived from bench/results)"
    )
    parser.add_argument("--products", type=int, help="seeded products (default: per shape)")
    parser.add_argument("--orders", type=int, help="seeded orders (default: per shape)")
    parser.add_argument("--shoppers", type=int, help="seeded shoppers (default: per shape)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--plain-static",
        action="store_true",
        help="collect static files without hashing and compressing them (seconds instead of "
        "a minute; for the stack test: the figures are not those of the deployed stack)",
    )
    args = parser.parse_args()
    PROCESSES.install()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out = args.out
    prefix = out / f"{stamp}-{args.shape}"
    out.mkdir(parents=True, exist_ok=True)
    run_id = f"lt{os.getpid()}"
    db = None
    sampler: Sampler | None = None
    workdir = harness.temp_dir(f"storefront-loadtest-{stamp}-")
    records_path = workdir / "records.json"
    redis_ok = False
    status = 1
    try:
        env_locust = dict(os.environ)
        env_locust["LOADTEST_SHAPE"] = args.shape
        env_locust["LOADTEST_RECORDS"] = str(records_path)
        env_locust.setdefault("LOADTEST_DURATION", "60")
        result: dict = {
            "shape": args.shape,
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        }
        if args.plain_static:
            result["static_files"] = (
                "plain storage (--plain-static), not the deployed hashed and compressed files"
            )
        if args.shape == "peak":
            try:
                rate = (
                    {"rate": args.rate, "source": "--rate"} if args.rate else peak_rate_from_bench()
                )
            except ValueError as exc:
                log(f"{exc}: give the rate with --rate N")
                return 1
            users = int(
                env_locust.get("LOADTEST_USERS")
                or max(10, math.ceil(rate["rate"] / PEAK_REQUESTS_PER_USER))
            )
            env_locust.update(LOADTEST_RATE=str(rate["rate"]), LOADTEST_USERS=str(users))
            env_locust.setdefault("LOADTEST_SPAWN_RATE", "10")
            env_locust.setdefault("LOADTEST_WARMUP", "15")
            result["target"] = {**rate, "users": users, "warmup_s": int(env_locust["LOADTEST_WARMUP"]),
                                "measured_s": int(env_locust["LOADTEST_DURATION"])}  # fmt: skip
            log(f"peak: {rate['rate']} req/s from {rate['source']}, {users} users")
        host = args.host
        limits: dict[str, str] | str = "those of the stack under test (LOADTEST_HOST)"
        g = front = None
        if not host:
            sizes = SIZES[args.shape]
            products, orders, users_seeded = (
                args.products or sizes[0], args.orders or sizes[1], args.shoppers or sizes[2]
            )  # fmt: skip
            env_locust.setdefault("LOADTEST_SHOPPERS", str(users_seeded))
            db = Database(f"loadtest_{os.getpid()}").create()
            redis_ok = harness.redis_available(REDIS_URL)
            env = harness.app_env(
                database_url=db.url,
                var_dir=workdir / "var",
                static_root=workdir / "static",
                redis_url=REDIS_URL if redis_ok else None,
                cache_prefix=run_id,
                extra={"STATICFILES_STORAGE": PLAIN_STATIC} if args.plain_static else None,
            )
            harness.storefront_command(["migrate", "--noinput", "--verbosity", "0"], env)
            log(f"seeding {products:,} products, {orders:,} orders, {users_seeded:,} shoppers")
            seeding = time.monotonic()
            harness.seed(env, products=products, orders=orders, users=users_seeded)
            result["dataset"] = {
                "products": products,
                "orders": orders,
                "shoppers": users_seeded,
                "seed_s": round(time.monotonic() - seeding, 1),
                "database_mb": round(db.size_bytes() / 2**20),
            }
            log(
                f"seeded in {result['dataset']['seed_s']} s, database {result['dataset']['database_mb']:,} MB"
            )
            harness.storefront_command(["collectstatic", "--noinput", "--verbosity", "0"], env)
            g = harness.serve_gunicorn(env, workdir / "gunicorn.log")
            front = harness.start_nginx(
                workdir / "nginx",
                [g.netloc],
                static_root=workdir / "static",
                media_root=workdir / "var" / "media",
                variables=LOADTEST_LIMITS,
            )
            host = front.url
            limits = dict(LOADTEST_LIMITS)
            log(
                f"nginx on {host} → gunicorn on {g.url} ({len(g.pids())} workers); nginx limits for the run: {limits}"
            )
        else:
            log(f"load testing {host} (LOADTEST_HOST): nothing started, nothing sampled")
        # Locust itself is bounded by its shape; the timeout is a backstop.
        backstop = int(env_locust["LOADTEST_DURATION"])
        if args.shape == "stress":
            backstop = int(env_locust.get("LOADTEST_STRESS_MAX_SECONDS", "300"))
        elif args.shape == "peak":
            backstop += int(env_locust["LOADTEST_WARMUP"]) + math.ceil(
                int(env_locust["LOADTEST_USERS"]) / int(env_locust["LOADTEST_SPAWN_RATE"])
            )
        command = [
            harness.PYTHON, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
            "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}.html",
            "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING",
        ]  # fmt: skip
        log(f"locust, shape {args.shape}: {' '.join(command[2:])}")
        started = time.monotonic()
        proc = PROCESSES.spawn(command, env=env_locust, log_path=workdir / "locust.log")
        if g and front and db:
            sampler = Sampler(
                gunicorn=g, nginx=front, locust_pid=proc.pid, database=db,
                redis_url=REDIS_URL if redis_ok else None,
            )  # fmt: skip
            sampler.start()
        try:
            proc.wait(timeout=backstop + 120)
        except subprocess.TimeoutExpired:
            log("locust overran its bound: stopping it")
            PROCESSES.stop(proc)
        PROCESSES.forget(proc)
        if sampler:
            sampler.stop()
        output = (workdir / "locust.log").read_text(errors="replace")
        print(output[-6000:])
        run = json.loads(records_path.read_text()) if records_path.exists() else {}
        records = run.get("records", [])
        window = run.get("window") or {}
        summary = summarize_records(records, window.get("start"), window.get("end"))
        result.update(summary)
        result.update(
            host=host,
            path="locust → nginx → gunicorn" if not args.host else "locust → LOADTEST_HOST",
            nginx_limits=limits,
            elapsed_s=round(time.monotonic() - started, 1),
            locust_exit=proc.returncode,
            locust_stats_csv=locust_totals(Path(f"{prefix}_stats.csv")),
            loadavg_end=[round(x, 2) for x in os.getloadavg()],
        )
        if args.shape == "peak":
            result["measured_window"] = window or None
            result["pacer"] = run.get("pacer")
            result["verdict"] = sustained(summary, result["target"]["rate"]) if window else {
                "sustained": False, "checks": {"the measured minute began": False}}  # fmt: skip
        if sampler:
            join_samples(sampler.samples, records, run.get("users", []))
            result["resources"] = {
                "limits": sampler.limits(),
                "during": resource_summary(sampler.samples, window.get("start"), window.get("end")),
                "sampler_errors": sampler.errors,
            }
        if args.shape == "stress":
            report = stress_report(
                run,
                records,
                sampler.samples if sampler else [],
                sampler.limits() if sampler else {},
                float(env_locust.get("LOADTEST_STRESS_STEP_SECONDS") or 15),
            )
            (out / f"{stamp}-stress.json").write_text(json.dumps(report, indent=1) + "\n")
            result["stress"] = {k: v for k, v in report.items() if k != "samples"}
            log("stress: " + describe_stress(report))
        (out / f"{stamp}-{args.shape}-summary.json").write_text(json.dumps(result, indent=1) + "\n")
        log(
            f"{result['requests']:,} requests, {result['rate_2xx']} req/s 2xx, p50 {result['p50_ms']} ms, "
            f"p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, failures {result['failures']:,} "
            f"({result['error_rate'] * 100:.2f}%) {result['statuses']}"
            + (
                f"; target {result['target']['rate']} req/s: {result['verdict']}"
                if args.shape == "peak"
                else ""
            )
        )
        status = 0 if result.get("requests") else 1
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
    except harness.Unavailable as exc:
        log(f"cannot start the stack: {exc}")
    finally:
        if sampler and sampler.is_alive():
            sampler.stop()
        PROCESSES.stop_all()
        if db:
            db.drop()
        if redis_ok:
            harness.redis_delete_prefix(REDIS_URL, run_id)
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
