"""gunicorn faults: reloads (HUP), worker recycling, a killed instance, a slow request."""

from __future__ import annotations

import os
import signal
import threading
import time

from faults.load import OpenLoopLoad, Request, send
from faults.report import ScenarioResult, Target
from faults.scenarios.common import (
    RATE,
    Shoppers,
    browse_requests,
    no_failures_target,
    under_load,
)
from faults.stack import FaultStack
from faults.stats import failures_of

HUP_ROUNDS = 5
HUP_INTERVAL = 3.0  # seconds between two HUPs of the same instance
GTHREAD = {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_THREADS": "4"}
SYNC: dict[str, str] = {}  # deploy/gunicorn.conf.py's defaults: sync workers


def _hup(stack: FaultStack, result: ScenarioResult, overrides: dict[str, str]) -> None:
    stack.restart_web(overrides)
    workers = int(stack.env["GUNICORN_WORKERS"])
    before = {p for w in stack.web for p in w.worker_pids()}

    def fault(load: OpenLoopLoad) -> dict:
        for _ in range(HUP_ROUNDS):
            for instance in stack.web:
                os.kill(instance.master_pid, signal.SIGHUP)
            time.sleep(HUP_INTERVAL)
        settled = all(w.wait_workers(workers, timeout=30) for w in stack.web)
        return {"workers settled after the last HUP": settled}

    run = under_load(stack, fault)
    after = {p for w in stack.web for p in w.worker_pids()}
    result.phases = run.phases
    result.facts.update(run.fault_facts)
    result.facts["HUPs"] = f"{HUP_ROUNDS} to each of the 2 instances, {HUP_INTERVAL:g} s apart"
    result.facts["workers replaced"] = len(before - after) == len(before)
    no_failures_target(result, run)
    # The issue asks for the p99 during the reloads to be stated: a target it always meets.
    p99 = run.phases["during"]["p99_ms"]
    result.add(Target("p99 during the reloads (stated)", "stated", f"{p99} ms", p99 is not None))


def hup_sync(stack: FaultStack, result: ScenarioResult) -> None:
    _hup(stack, result, SYNC)


def hup_gthread(stack: FaultStack, result: ScenarioResult) -> None:
    _hup(stack, result, GTHREAD)


def _recycles(stack: FaultStack, since: dict[int, int]) -> int:
    """How many times workers restarted after max_requests, from the gunicorn logs."""
    count = 0
    for instance in stack.web:
        with instance.log_path.open("rb") as log:
            log.seek(since[instance.number])
            count += log.read().count(b"Autorestarting worker after current request")
    return count


def recycling(stack: FaultStack, result: ScenarioResult) -> None:
    stack.restart_web({**SYNC, "GUNICORN_MAX_REQUESTS": "50", "GUNICORN_MAX_REQUESTS_JITTER": "5"})
    offsets = {w.number: w.log_path.stat().st_size for w in stack.web}

    def fault(load: OpenLoopLoad) -> None:
        time.sleep(15)

    run = under_load(stack, fault, before=0, after=0)
    result.phases = run.phases
    recycled = _recycles(stack, offsets)
    result.facts["max_requests"] = "50 (jitter 5), 2 instances × 2 sync workers"
    result.facts["workers recycled during the run"] = recycled
    result.add(Target("workers recycled (the fault happened)", "≥ 15", recycled, recycled >= 15))
    result.add(Target.equal("connection resets", failures_of(run.phases["all"], "reset"), 0))
    result.add(Target.equal("502 answers", failures_of(run.phases["all"], "502"), 0))
    no_failures_target(result, run)
    stack.restart_web(SYNC)


def _duplicates(stack: FaultStack, keys: list[str]) -> tuple[int, int]:
    """(orders carrying these idempotency keys, keys with more than one order)."""
    import psycopg

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, count(*) FROM orders_order WHERE idempotency_key = ANY(%s) "
            "GROUP BY idempotency_key",
            (keys,),
        ).fetchall()
    return sum(n for _, n in rows), sum(1 for _, n in rows if n > 1)


def kill_instance(stack: FaultStack, result: ScenarioResult) -> None:
    stack.restart_web(SYNC)
    shoppers = Shoppers(stack, 6).start()
    victim = stack.web[0]

    def fault(load: OpenLoopLoad) -> dict:
        pids = [victim.master_pid, *victim.worker_pids()]
        os.killpg(victim.master_pid, signal.SIGKILL)  # master and workers at once, like OOM
        assert victim.proc is not None
        victim.proc.wait(timeout=10)
        time.sleep(5)  # down for a while, then started again as systemd's Restart= would
        started = time.monotonic()
        stack.ensure_web()
        return {
            "killed": f"instance 1, {len(pids)} processes (master and workers), SIGKILL",
            "down for": f"{5 + time.monotonic() - started:.1f} s (restart included)",
        }

    try:
        run = under_load(stack, fault, after=8)
    finally:
        attempts = shoppers.stop()
    result.phases = run.phases
    result.facts.update(run.fault_facts)
    no_failures_target(result, run, "failed GETs")
    keys = [a["key"] for a in attempts]
    orders, duplicated = _duplicates(stack, keys)
    retried = [a for a in attempts if len(a["statuses"]) > 1]
    unanswered = sum(
        1 for a in attempts for s in a["statuses"] if not isinstance(s, int) or s >= 500
    )
    placed = sum(1 for a in attempts if a["statuses"] and a["statuses"][-1] == 302)
    result.facts["checkouts (forms posted)"] = len(attempts)
    result.facts["checkout POSTs without an answer (reset/5xx), then resubmitted"] = unanswered
    result.facts["forms submitted more than once"] = len(retried)
    result.facts["orders carrying those keys"] = orders
    result.add(Target("checkouts during the run", "≥ 20", len(attempts), len(attempts) >= 20))
    result.add(Target.equal("idempotency keys with more than one order", duplicated, 0))
    result.add(Target.equal("orders = checkouts answered 302", orders, placed))


def timeout(stack: FaultStack, result: ScenarioResult) -> None:
    """A request that sleeps past gunicorn's timeout (30 s by default, 10 s here to keep the run
    short; nginx's proxy_read_timeout is set below it the same way as in production)."""
    stack.restart_web(SYNC)
    outcome: dict = {}

    def slow() -> None:
        started = time.monotonic()
        try:
            status, body = send(stack.url, Request("GET", "/_faults/sleep/45"), timeout=90)
        except Exception as exc:
            status, body = type(exc).__name__, b""
        outcome.update(status=status, body=body, seconds=time.monotonic() - started)

    def fault(load: OpenLoopLoad) -> dict:
        thread = threading.Thread(target=slow)
        thread.start()
        thread.join(timeout=100)
        return {}

    run = under_load(stack, fault, request_for=browse_requests(stack))
    result.phases = run.phases
    body = outcome.get("body", b"")
    result.facts["slow request answered after"] = f"{outcome.get('seconds', 0):.1f} s"
    result.add(Target.equal("the slow request's status", outcome.get("status"), "504"))
    result.add(
        Target.true("it gets the site's 504 page", b"right back" in body, "the 50x.html page")
    )
    result.add(Target.equal("other requests failed", run.phases["all"]["failed"], 0))


__all__ = ["RATE", "hup_gthread", "hup_sync", "kill_instance", "recycling", "timeout"]
