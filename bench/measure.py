# ruff: noqa: SIM105
"""One measured load run: wrk for a fixed time against one URL while the CPU and RSS of every
server process are sampled, and the ratios between runs.

Only 2xx answers are served pages. bench/lua/report.lua counts every response by status
class; a run's req/s is its 2xx responses per second, and a run that saw any other status
(a 429 of nginx's limiter, a redirect, a 5xx) or a socket error is *failed*: it is never used
as a figure (`ratio` gives None), the report names it with its status counts, and bench/run.py
exits non-zero. A probe before the run (two plain GETs, redirects not followed) records the
status and cache headers; a run whose probe does not show what the run claims to measure (e.g.
`X-Storefront-Cache: MISS` on a repeated request for an "uncached" run) fails the same way.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from modes import MODES

import harness
from harness import log

LUA = Path(__file__).resolve().parent / "lua" / "report.lua"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
SOCKET_ERRORS = ("connect", "read", "write", "timeout")
# Probe headers recorded with every run (and the keys they are stored under).
PROBE_HEADERS = {"X-Storefront-Cache": "x_storefront_cache", "X-Cache-Status": "x_cache_status"}


class Sampler:
    """CPU % and RSS of each server process, sampled every `interval` s while a run lasts."""

    def __init__(self, servers: list[harness.Server], interval: float = 0.5) -> None:
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


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple:
    """One GET, redirects *not* followed (a 302 is a 302): status, headers, body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path or "/", headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def parse_wrk_output(stdout: str) -> dict | None:
    """The BENCH_JSON line report.lua prints (None when there is none)."""
    match = re.search(r"^BENCH_JSON (\{.*\})$", stdout, re.M)
    return json.loads(match.group(1)) if match else None


def run_problems(raw: dict) -> list[str]:
    """Why a wrk run is not a valid throughput figure (empty: it is). Every response must be a
    2xx, counted by class, with no socket error."""
    problems = []
    if not raw.get("status_counted"):
        problems.append("statuses not counted (BENCH_COUNT_STATUS=0): not a figure")
    statuses = {c: raw.get(f"status_{c}", 0) for c in STATUS_CLASSES}
    non_2xx = {c: n for c, n in statuses.items() if c != "2xx" and n}
    if non_2xx:
        problems.append(
            "non-2xx responses: " + ", ".join(f"{n:,} × {c}" for c, n in non_2xx.items())
        )
    if raw.get("err_status") and not statuses["4xx"] + statuses["5xx"] + statuses["other"]:
        problems.append(f"wrk counted {raw['err_status']:,} statuses ≥ 400 the script did not")
    errors = {k: raw.get(f"err_{k}", 0) for k in SOCKET_ERRORS}
    if any(errors.values()):
        problems.append("socket errors: " + ", ".join(f"{n:,} {k}" for k, n in errors.items() if n))
    if raw.get("status_counted") and sum(statuses.values()) != raw["requests"]:
        problems.append(
            f"status counts add up to {sum(statuses.values()):,}, wrk completed "
            f"{raw['requests']:,} responses"
        )
    if raw.get("status_counted") and not statuses["2xx"]:
        problems.append("no 2xx response at all")
    return problems


def run_metrics(raw: dict) -> dict:
    """The figures of one wrk run: req/s of 2xx responses only, latency percentiles (of every
    response: a run with any other status fails anyway), status and socket-error counts."""
    seconds = raw["duration_us"] / 1e6
    statuses = {c: raw.get(f"status_{c}", 0) for c in STATUS_CLASSES}
    # Without status counting (the cost check only) every response is counted: never a figure.
    served = statuses["2xx"] if raw.get("status_counted") else raw["requests"]
    return {
        "rps": round(served / seconds, 1) if seconds > 0 else 0.0,
        "responses": raw["requests"],
        "seconds": round(seconds, 3),
        "statuses": statuses,
        "non_2xx": sum(n for c, n in statuses.items() if c != "2xx"),
        "socket_errors": {k: raw.get(f"err_{k}", 0) for k in SOCKET_ERRORS},
        "bytes": raw["bytes"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
    }


def _matches(value: str | None, expected: str | Iterable[str]) -> bool:
    return value in ({expected} if isinstance(expected, str) else set(expected))


class Bench:
    def __init__(self, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.cfg = MODES[mode]
        self.workdir = workdir
        self.runs: list[dict] = []
        # Measurements other than wrk runs that failed their own checks (checkout, memory).
        self.other_failures: list[dict] = []

    def fail(self, label: str, problems: list[str]) -> None:
        """Record a failed measurement that is not a wrk run (the bench then exits non-zero)."""
        self.other_failures.append({"label": label, "problems": problems})
        log(f"  {label}: FAILED: {'; '.join(problems)}")

    @property
    def failures(self) -> list[dict]:
        """Every failed run or measurement: label and its problems (the bench fails on any)."""
        runs = [
            {"label": r["label"], "problems": r["problems"], "statuses": r.get("statuses")}
            for r in self.runs
            if not r.get("ok") and not r.get("informational")
        ]
        return runs + self.other_failures

    def wrk(
        self,
        label: str,
        url: str,
        *,
        servers: list[harness.Server],
        headers: dict[str, str] | None = None,
        duration: int | None = None,
        expect_headers: dict[str, str | Iterable[str]] | None = None,
        expect_body: bytes | None = None,
        count_status: bool = True,
    ) -> dict:
        """One bounded wrk run (after a short warm-up) with CPU/RSS sampling; returns metrics.

        Two probes first (plain GETs, redirects not followed); the second must answer 2xx,
        show `expect_headers` and contain `expect_body`, else the run fails. `count_status=False`
        runs without report.lua's response() (only to measure what counting costs): such a
        run is informational, never a figure."""
        duration = duration or self.cfg["duration"]
        env = dict(os.environ, BENCH_COUNT_STATUS="1" if count_status else "0")
        probes = [get(url, headers) for _ in range(2)]
        status, probe_headers, body = probes[-1]
        base = [WRK, "-t1", f"-c{self.cfg['connections']}", "--latency", "--timeout", "10s"]
        base += ["-s", str(LUA)]
        for name, value in (headers or {}).items():
            base += ["-H", f"{name}: {value}"]
        warm = subprocess.run(
            [*base, f"-d{self.cfg['warmup']}s", url],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        with Sampler(servers) as sampler:
            done = subprocess.run(
                [*base, f"-d{duration}s", url],
                env=env, capture_output=True, text=True, timeout=duration + 60, check=False,
            )  # fmt: skip
        result: dict = {
            "label": label,
            "url": url,
            "probe": {
                "status": status,
                "bytes": len(body),
                **{key: probe_headers.get(h) for h, key in PROBE_HEADERS.items()},
                "first": {
                    "status": probes[0][0],
                    **{key: probes[0][1].get(h) for h, key in PROBE_HEADERS.items()},
                },
            },
            "resources": sampler.summary(),
        }
        if not count_status:
            result["informational"] = True
        problems: list[str] = []
        if not 200 <= status < 300:
            problems.append(f"probe answered {status}")
        for header, expected in (expect_headers or {}).items():
            if not _matches(probe_headers.get(header), expected):
                problems.append(
                    f"probe: {header} is {probe_headers.get(header)!r}, expected {expected!r}"
                )
        if expect_body is not None and expect_body not in body:
            problems.append(f"probe: body lacks {expect_body.decode(errors='replace')!r}")
        warm_raw = parse_wrk_output(warm.stdout)
        if warm_raw:
            result["warmup_statuses"] = run_metrics(warm_raw)["statuses"]
        raw = parse_wrk_output(done.stdout)
        if done.returncode != 0 or raw is None:
            result["error"] = (done.stdout + done.stderr)[-1500:]
            problems.append(f"wrk failed: {result['error'][-300:]}")
        else:
            result.update(run_metrics(raw))
            problems += run_problems(raw)
        result["ok"] = not problems
        result["problems"] = problems
        if "rps" in result:
            log(
                f"  {label}: {result['rps']:.0f} req/s "
                f"({'2xx' if count_status else 'all responses, statuses not counted'}), "
                f"p50 {result['p50_ms']:.1f} ms, "
                f"p95 {result['p95_ms']:.1f} ms, statuses "
                + " ".join(f"{c}:{n}" for c, n in result["statuses"].items() if n)
                + f" (probe {status} {result['probe']['x_storefront_cache'] or ''}"
                f"{result['probe']['x_cache_status'] or ''})"
                + ("" if result["ok"] or not count_status else f" FAILED: {'; '.join(problems)}")
            )
        else:
            log(f"  {label}: FAILED: {'; '.join(problems)}")
        self.runs.append(result)
        return result


def ratio(a: dict | None, b: dict | None, key: str = "rps") -> float | None:
    """a[key] / b[key]; None when either is missing, failed (non-2xx, socket errors, a probe
    that did not match) or informational."""
    for run in (a, b):
        if not run or run.get(key) is None or run.get("ok") is False or run.get("informational"):
            return None
    if not b[key]:
        return None
    return round(a[key] / b[key], 3)


def bracket_mean(run: dict | None, key: str = "rps") -> float | None:
    """The mean of the reference runs measured right before and right after `run` (its
    "reference" bracket, see comparisons.bracketed); None without a bracket or when either
    reference run failed."""
    sides = [(run or {}).get("reference", {}).get(side) for side in ("before", "after")]
    if not all(s and s.get("ok") is not False and s.get(key) for s in sides):
        return None
    return (sides[0][key] + sides[1][key]) / 2


def ratio_to_reference(run: dict | None, ref: dict | None, key: str = "rps") -> float | None:
    """`run` ÷ the mean of its bracketing reference runs when it was bracketed, else ÷ `ref`.

    On a shared VM the speed drifts by tens of percent within minutes: a page measured minutes
    after its reference would carry that drift into its ratio; the references right before
    and right after it share its conditions. None when the run or a reference failed."""
    if run and "reference" in run:
        mean = bracket_mean(run, key)
        if mean is None or ratio(run, run, key) is None:
            return None
        return round(run[key] / mean, 3)
    return ratio(run, ref, key)
