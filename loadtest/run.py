# ruff: noqa: E501
"""`make loadtest`: run loadtest/locustfile.py headless, bounded in time, reports in loadtest/results/.

    .venv/bin/python loadtest/run.py                     # steady shape, 60 s, own stack
    .venv/bin/python loadtest/run.py --shape stress      # ramp to the breaking point
    .venv/bin/python loadtest/run.py --shape browse      # 100k products, deep pages
    LOADTEST_HOST=http://127.0.0.1:8000 .venv/bin/python loadtest/run.py   # a running stack

Without LOADTEST_HOST it starts its own stack on loopback: a throwaway PostgreSQL database
(`loadtest_<pid>`, migrated, seeded with `storefront seed`, dropped afterwards), Redis with a
key prefix of its own (keys deleted afterwards), gunicorn (deploy/gunicorn.conf.py) on a free
port, and nginx in front of it rendered from deploy/nginx like every other target: the load goes
through nginx, as users' requests do (static files, compression, microcache, security headers,
limiter bookkeeping). Every Locust user comes from 127.0.0.1, so nginx's per-address limits are
raised for the run to LOADTEST_LIMITS below (with the production 5 logins a minute per address,
nearly every simulated login would be a 429); the summary JSON states the limits used, and any
429 still counts as a failure, never as throughput.

Writes loadtest/results/<timestamp>-<shape>_stats.csv (the summary, per endpoint and
aggregated), _failures.csv, _exceptions.csv, _stats_history.csv and an HTML report; the
stress shape also writes <timestamp>-stress.json with the user count reached.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import harness  # noqa: E402
from harness import PROCESSES, Database, log  # noqa: E402

RESULTS = REPO_ROOT / "loadtest" / "results"
LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
REDIS_URL = os.environ.get("LOADTEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# nginx's per-address limits during the run (all Locust users share one address).
LOADTEST_LIMITS = {
    "NGINX_RATE_AUTH": "60000r/m",
    "NGINX_RATE_API": "100000r/s",
    "NGINX_RATE_GENERAL": "100000r/s",
    "NGINX_CONN_PER_IP": "10000",
}
# (products, orders, users) seeded per shape.
SIZES = {
    "steady": (2_000, 5_000, 200),
    "stress": (2_000, 5_000, 200),
    "browse": (100_000, 50_000, 500),
}


def summary(stats_csv: Path) -> dict:
    with stats_csv.open() as f:
        rows = list(csv.DictReader(f))
    agg = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if not agg:
        return {}
    requests = int(agg["Request Count"])
    return {
        "requests": requests,
        "failures": int(agg["Failure Count"]),
        "error_rate": round(int(agg["Failure Count"]) / max(1, requests), 4),
        "rps": round(float(agg["Requests/s"]), 1),
        "p50_ms": agg["50%"],
        "p95_ms": agg["95%"],
        "p99_ms": agg["99%"],
        "endpoints": {
            f"{r['Type']} {r['Name']}": {
                "requests": int(r["Request Count"]),
                "failures": int(r["Failure Count"]),
                "p50_ms": r["50%"],
                "p95_ms": r["95%"],
            }
            for r in rows
            if r["Name"] != "Aggregated"
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", choices=sorted(SIZES), default=os.environ.get("SHAPE") or "steady"
    )
    parser.add_argument("--host", default=os.environ.get("LOADTEST_HOST", ""))
    args = parser.parse_args()
    PROCESSES.install()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    prefix = RESULTS / f"{stamp}-{args.shape}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    run_id = f"lt{os.getpid()}"
    db = None
    workdir = harness.temp_dir(f"storefront-loadtest-{stamp}-")
    redis_ok = False
    status = 1
    try:
        env_locust = {k: v for k, v in os.environ.items()}
        env_locust["LOADTEST_SHAPE"] = args.shape
        env_locust.setdefault("LOADTEST_DURATION", "60")
        if args.shape == "stress":
            env_locust["LOADTEST_RESULT"] = str(RESULTS / f"{stamp}-stress.json")
        host = args.host
        limits: dict[str, str] | str = "those of the stack under test (LOADTEST_HOST)"
        if not host:
            products, orders, users = SIZES[args.shape]
            env_locust.setdefault("LOADTEST_SHOPPERS", str(users))
            db = Database(f"loadtest_{os.getpid()}").create()
            redis_ok = harness.redis_available(REDIS_URL)
            env = harness.app_env(
                database_url=db.url,
                var_dir=workdir / "var",
                static_root=workdir / "static",
                redis_url=REDIS_URL if redis_ok else None,
                cache_prefix=run_id,
            )
            log(
                f"migrating and seeding {products:,} products, {orders:,} orders, {users:,} shoppers"
            )
            harness.storefront_command(["migrate", "--noinput", "--verbosity", "0"], env)
            harness.seed(env, products=products, orders=orders, users=users)
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
            log(f"nginx on {host} → gunicorn on {g.url}; nginx limits for the run: {limits}")
        else:
            log(f"load testing {host} (LOADTEST_HOST): nothing started")
        # Locust itself is bounded by its shape; the timeout is a backstop.
        backstop = (
            int(env_locust.get("LOADTEST_STRESS_MAX_SECONDS", "300"))
            if args.shape == "stress"
            else int(env_locust["LOADTEST_DURATION"])
        )
        command = [
            harness.PYTHON, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
            "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}.html",
            "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING",
        ]  # fmt: skip
        log(f"locust, shape {args.shape}: {' '.join(command[2:])}")
        started = time.monotonic()
        proc = PROCESSES.spawn(command, env=env_locust, log_path=workdir / "locust.log")
        try:
            proc.wait(timeout=backstop + 120)
        except subprocess.TimeoutExpired:
            log("locust overran its bound: stopping it")
            PROCESSES.stop(proc)
        PROCESSES.forget(proc)
        output = (workdir / "locust.log").read_text(errors="replace")
        print(output[-6000:])
        result = summary(Path(f"{prefix}_stats.csv"))
        result.update(
            shape=args.shape,
            host=host,
            path="locust → nginx → gunicorn" if not args.host else "locust → LOADTEST_HOST",
            nginx_limits=limits,
            elapsed_s=round(time.monotonic() - started, 1),
            locust_exit=proc.returncode,
        )
        stress = RESULTS / f"{stamp}-stress.json"
        if stress.exists():
            result["stress"] = json.loads(stress.read_text())
        (RESULTS / f"{stamp}-{args.shape}-summary.json").write_text(
            json.dumps(result, indent=1) + "\n"
        )
        log(
            f"{result.get('requests', 0):,} requests, {result.get('rps')} req/s, p50 {result.get('p50_ms')} ms, "
            f"p95 {result.get('p95_ms')} ms, errors {result.get('error_rate', 0) * 100:.2f}%"
            + (f"; stress: {result['stress']}" if "stress" in result else "")
        )
        status = 0 if result.get("requests") else 1
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
    except harness.Unavailable as exc:
        log(f"cannot start the stack: {exc}")
    finally:
        PROCESSES.stop_all()
        if db:
            db.drop()
        if redis_ok:
            harness.redis_delete_prefix(REDIS_URL, run_id)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
