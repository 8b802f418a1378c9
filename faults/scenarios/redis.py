"""Redis (cache, sessions, Celery broker) stopped for 30 s, then hung (SIGSTOP)."""

from __future__ import annotations

import os
import signal
import time

from faults.load import OpenLoopLoad
from faults.report import ScenarioResult, Target
from faults.scenarios.common import Shopper, under_load
from faults.stack import FaultStack
from faults.stats import failures_of

DOWN_SECONDS = 30
HUNG_SECONDS = 15
# Without its cache every page is rendered in full (15-40 ms of CPU here, against 2-4 ms
# cached): this 2-core machine then serves about 80-100 req/s (measured with this mix, Redis
# hung), so 200 req/s would queue without bound whatever the app did. The Redis scenarios load
# it at a rate it can serve cache-less, so that their figures show the fault, not the overload.
REDIS_RATE = 60


def _shop(stack: FaultStack, username: str) -> tuple[bool, bool, str]:
    """A fresh visitor logs in and checks out one item: (logged in, order placed, detail)."""
    shopper = Shopper(stack, username, stack.stocked_ids[0])
    try:
        shopper.login()
    except Exception as exc:
        return False, False, f"login: {exc}"
    try:
        shopper.buy_once()
    except Exception as exc:
        return True, False, f"checkout: {exc}"
    statuses = shopper.attempts[-1]["statuses"] if shopper.attempts else []
    return True, bool(statuses) and statuses[-1] == 302, f"checkout answered {statuses}"


def _order_count(stack: FaultStack) -> int:
    import psycopg

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]


def stopped(stack: FaultStack, result: ScenarioResult) -> None:
    """The one Redis (cache, sessions, broker) stopped for 30 s under 60 req/s; meanwhile a
    customer logs in and checks out. Then Redis starts again (empty: no persistence) and
    nothing else is restarted: /readyz must turn 200 again, and an order placed then must get
    its confirmation email through the same Celery worker."""
    stack.ensure_web()
    outcome: dict = {}

    def fault(load: OpenLoopLoad) -> dict:
        stack.redis.stop()
        down_at = time.monotonic()
        time.sleep(3)
        outcome["shop"] = _shop(stack, stack.customers[0])
        time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
        stack.redis.start()
        return {"Redis down for": f"{time.monotonic() - down_at:.1f} s"}

    run = under_load(stack, fault, after=10, rate=REDIS_RATE)
    result.phases = run.phases
    result.facts.update(run.fault_facts)
    result.add(Target.equal("5xx answers", failures_of(run.phases["all"], "5xx"), 0))
    result.add(Target.equal("failed requests", run.phases["all"]["failed"], 0))
    logged_in, placed, detail = outcome.get("shop", (False, False, "not run"))
    result.facts["login and checkout while Redis was down"] = detail
    result.add(Target.true("login works while Redis is down", logged_in))
    result.add(Target.true("checkout works while Redis is down", placed))
    ready_at = time.monotonic()
    ready = stack.wait_ready(60)
    result.facts["/readyz 200 again after Redis returned"] = f"{time.monotonic() - ready_at:.1f} s"
    result.add(Target.true("recovers without restarting anything (/readyz 200)", ready))
    before = len(stack.smtp.sink.received())
    orders = _order_count(stack)
    _, placed_after, detail = _shop(stack, stack.customers[1])
    order_number_seen = False
    deadline = time.monotonic() + 60
    while placed_after and time.monotonic() < deadline:
        if len(stack.smtp.sink.received()) > before:
            order_number_seen = True
            break
        time.sleep(0.5)
    result.facts["order after recovery"] = detail
    result.facts["orders before that checkout"] = orders
    result.add(
        Target.true(
            "an order placed after recovery gets its email (worker reconnected)",
            placed_after and order_number_seen,
        )
    )


def hung(stack: FaultStack, result: ScenarioResult) -> None:
    """Redis frozen with SIGSTOP for 15 s under 60 req/s (it accepts connections and never
    answers: the worst case for a client), then SIGCONT. Every page must answer within 1 s:
    the cache's 0.25 s socket timeout and circuit breaker (storefront/redis_breaker.py)."""
    stack.ensure_web()
    assert stack.redis.proc is not None
    pid = stack.redis.proc.pid

    def fault(load: OpenLoopLoad) -> dict:
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(HUNG_SECONDS)
        finally:
            os.kill(pid, signal.SIGCONT)
        return {"Redis hung (SIGSTOP) for": f"{HUNG_SECONDS} s"}

    run = under_load(stack, fault, after=8, rate=REDIS_RATE)
    result.phases = run.phases
    result.facts.update(run.fault_facts)
    during = run.phases["during"]
    result.add(Target.equal("failed requests", run.phases["all"]["failed"], 0))
    result.add(Target.at_most("slowest answer while hung", during["max_ms"], 1000, " ms"))
    result.add(Target.true("/readyz 200 after SIGCONT", stack.wait_ready(30)))
