# ruff: noqa: SIM105
"""One measured load run: wrk for a fixed time against one URL while the CPU and RSS of every
server process are sampled, and the ratios between runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from modes import MODES

import harness
from harness import log

LUA = Path(__file__).resolve().parent / "lua" / "report.lua"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


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
        servers: list[harness.Server],
        unique: bool = False,
        headers: dict[str, str] | None = None,
        duration: int | None = None,
    ) -> dict:
        """One bounded wrk run (after a short warm-up) with CPU/RSS sampling; returns metrics."""
        duration = duration or self.cfg["duration"]
        env = dict(os.environ, BENCH_UNIQUE="1" if unique else "0")
        nonce = f"bench_nonce=probe-{time.monotonic_ns()}"
        probe_url = url + (("&" if "?" in url else "?") + nonce if unique else "")
        status, probe_headers, body = harness.fetch(probe_url, headers)
        if not unique:  # a second look shows the steady state (cache filled by the first)
            status, probe_headers, body = harness.fetch(url, headers)
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
