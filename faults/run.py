"""`make faults`: faults injected into the real stack under load, with a report.

    .venv/bin/python faults/run.py                     # every scenario (about 12 minutes)
    .venv/bin/python faults/run.py --only hup_sync,kill_instance
    .venv/bin/python faults/run.py --list

Starts its own stack on loopback (faults/stack.py): nginx → 2 gunicorn instances on unix
sockets → a throwaway PostgreSQL cluster and Redis of its own, a Celery worker and beat, an
SMTP sink. Each scenario runs a fixed-rate load (faults/load.py), injects its fault, and checks
its targets. Writes faults/REPORT.md and faults/results/<timestamp>.json (--out elsewhere) and
exits 1 when any target is missed. docs/faults.md describes each scenario.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import harness  # noqa: E402
from faults.report import ScenarioResult, overall_passed, write_report  # noqa: E402
from faults.scenarios import deploy, disk, email, gunicorn, nginx, postgres, redis  # noqa: E402
from faults.stack import FaultStack, fault_stack  # noqa: E402
from harness import PROCESSES, log  # noqa: E402

Scenario = Callable[[FaultStack, ScenarioResult], None]

# name: (title, function), in the order they run.
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "hup_sync": ("gunicorn HUP ×5 under load, sync workers", gunicorn.hup_sync),
    "hup_gthread": ("gunicorn HUP ×5 under load, gthread workers", gunicorn.hup_gthread),
    "recycling": ("Worker recycling (max_requests=50) under load", gunicorn.recycling),
    "kill_instance": ("kill -9 of one of two instances under load", gunicorn.kill_instance),
    "timeout": ("A request past the gunicorn timeout", gunicorn.timeout),
    "nginx_reload": ("nginx reload under load", nginx.reload),
    "redis_stopped": ("Redis stopped for 30 s under load", redis.stopped),
    "redis_hung": ("Redis hung (SIGSTOP) under load", redis.hung),
    "postgres_restart": ("PostgreSQL restarted under load", postgres.restarted),
    "postgres_exhausted": ("PostgreSQL connections exhausted under load", postgres.exhausted),
    "celery_kill": ("Celery worker kill -9 ×3 during 1,000 queued emails", email.worker_killed),
    "broker_restart": ("Broker (Redis) restarted with tasks queued", email.broker_restarted),
    "smtp_down": ("SMTP down, then back", email.smtp_down),
    "disk_full": ("The uploads' disk full", disk.full),
    "deploy": ("deploy.sh under load: a migration, then a rollback", deploy.deploy),
}


def run_scenario(stack: FaultStack, name: str) -> ScenarioResult:
    title, function = SCENARIOS[name]
    result = ScenarioResult(name=name, title=title, summary=inspect.getdoc(function) or "")
    started = time.monotonic()
    log(f"scenario {name}: {title}")
    try:
        stack.warm()
        function(stack, result)
    except Exception as exc:  # reported as a missed target; the next scenarios still run
        result.error = f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
    result.seconds = time.monotonic() - started
    verdict = "passed" if result.passed else "FAILED"
    log(f"scenario {name} {verdict} in {result.seconds:.0f} s")
    for target in result.targets:
        log(f"  {'ok ' if target.passed else 'NO '} {target.name}: {target.measured}")
    try:
        stack.ensure_web()  # the next scenario starts from a whole stack
    except Exception as exc:
        log(f"could not restore the web instances: {exc}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}"
    )
    parser.add_argument("--out", default=str(REPO_ROOT / "faults"), help="report directory")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (title, _) in SCENARIOS.items():
            print(f"{name:16} {title}")
        return 0
    wanted = [n for n in args.only.split(",") if n]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; --list shows them")
    chosen = [n for n in SCENARIOS if not wanted or n in wanted]
    PROCESSES.install()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    started = time.monotonic()
    workdir = harness.temp_dir(f"storefront-faults-{stamp}-")
    results: list[ScenarioResult] = []
    try:
        with fault_stack(workdir, f"faults{os.getpid()}") as stack:
            for name in chosen:
                results.append(run_scenario(stack, name))
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        results.append(ScenarioResult("run", "The run", error="interrupted"))
    except Exception as exc:
        log(traceback.format_exc())
        results.append(ScenarioResult("stack", "The stack starts", error=f"{exc}"[:2000]))
    finally:
        PROCESSES.stop_all()
        if os.environ.get("FAULTS_KEEP_WORKDIR"):
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "stamp": stamp,
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": chosen,
        "cores": os.cpu_count(),
    }
    path = write_report(results, meta, Path(args.out))
    met = sum(r.passed for r in results)
    log(f"{met}/{len(results)} scenarios met their targets; {path}")
    return 0 if overall_passed(results) else 1


if __name__ == "__main__":
    sys.exit(main())
