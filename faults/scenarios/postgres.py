"""PostgreSQL restarted, then its connections exhausted, under load (the stack's own cluster)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from faults.load import OpenLoopLoad, Request, send
from faults.report import ScenarioResult, Target
from faults.scenarios.common import Shopper, under_load
from faults.stack import FaultStack
from faults.stats import Sample, summarize

DOWN_SECONDS = 10
EXHAUSTED_SECONDS = 10
FAST = 1000  # ms: "fails fast" means an answer within a second
NO_HANG = 2000  # ms: the slowest answer of the browsing load while the database is away
PROBE_INTERVAL = 0.25


@dataclass
class Probes:
    """Requests that need the database, sent every PROBE_INTERVAL in a thread: /readyz, a
    search no cache holds (anonymous), and a signed-in customer's order history."""

    stack: FaultStack
    samples: dict[str, list[tuple[float, str, float, bool]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stop_event = threading.Event()
        self.shopper = Shopper(self.stack, self.stack.customers[2], self.stack.stocked_ids[0])
        self.shopper.login()
        cookie = "; ".join(f"{k}={m.value}" for k, m in self.shopper.client.cookies.items())
        self.kinds: dict[str, Callable[[int], Request]] = {
            "readyz": lambda i: Request("GET", "/readyz"),
            "search": lambda i: Request("GET", f"/products/?q=probe{i}"),
            "orders": lambda i: Request("GET", "/orders/", headers={"Cookie": cookie}),
        }
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def _run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            for kind, make in self.kinds.items():
                at = time.monotonic() - self.started
                try:
                    status, body = send(self.stack.url, make(i), timeout=10)
                except Exception as exc:
                    status, body = type(exc).__name__, b""
                took = (time.monotonic() - self.started - at) * 1000
                page = b"briefly unavailable" in body or b'"status"' in body
                self.samples.setdefault(kind, []).append((at, status, took, page))
            i += 1
            self.stop_event.wait(PROBE_INTERVAL)

    def start(self) -> Probes:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)

    def window(self, start: float, end: float) -> dict[str, list[tuple[float, str, float, bool]]]:
        return {k: [s for s in v if start <= s[0] < end] for k, v in self.samples.items()}

    def now(self) -> float:
        return time.monotonic() - self.started


def _outcomes(window: dict[str, list[tuple[float, str, float, bool]]]) -> dict[str, dict]:
    return {
        kind: {
            "statuses": dict(
                sorted(summarize([Sample(0, 0, s) for _, s, _, _ in rows])["statuses"].items())
            ),
            "slowest_ms": round(max((t for _, _, t, _ in rows), default=0), 1),
            "all_503_page": bool(rows) and all(s == "503" and page for _, s, _, page in rows),
            # A worker still holding a live connection may answer 200: fine, as long as
            # nothing else than the 503 page comes back, and the fault showed at all.
            "503_page_or_200": any(s == "503" for _, s, _, _ in rows)
            and all(s == "200" or (s == "503" and page) for _, s, _, page in rows),
            "all_200": bool(rows) and all(s == "200" for _, s, _, _ in rows),
        }
        for kind, rows in window.items()
    }


def _judge(
    stack: FaultStack,
    result: ScenarioResult,
    probes: Probes,
    outage: tuple[float, float],
    masters: list[int],
    run_phases: dict,
) -> None:
    start, end = outage
    # The first second after the fault began and after it ended are left out: a request in
    # flight at that moment may finish on either side of it.
    during = _outcomes(probes.window(start + 1, end))
    result.facts["probes while the database was away"] = {
        k: f"{v['statuses']}, slowest {v['slowest_ms']} ms" for k, v in during.items()
    }
    result.add(Target.true("/readyz 503 while it is away", during["readyz"]["all_503_page"]))
    result.add(
        Target.true(
            "pages that need it: the 503 page (or 200 from a connection still held)",
            during["search"]["503_page_or_200"] and during["orders"]["503_page_or_200"],
        )
    )
    slowest = max(v["slowest_ms"] for v in during.values())
    result.add(Target.at_most("they fail fast (slowest probe)", slowest, FAST, " ms"))
    failures = run_phases["all"]["failures"]
    others = {k: v for k, v in failures.items() if k != "503"}
    result.add(Target.equal("browsing: failures other than 503", others or 0, 0))
    result.add(
        Target.at_most(
            "browsing: slowest answer (no hang)", run_phases["during"]["max_ms"], NO_HANG, " ms"
        )
    )
    recovered_at = time.monotonic()
    ready = stack.wait_ready(60)
    result.facts["/readyz 200 again"] = (
        f"{time.monotonic() - recovered_at:.1f} s after the check began"
    )
    time.sleep(2)
    after = _outcomes(probes.window(probes.now() - 1.5, probes.now()))
    result.facts["probes after recovery"] = {k: str(v["statuses"]) for k, v in after.items()}
    result.add(
        Target.true(
            "recovers without restarting the app",
            ready
            and all(v["all_200"] for v in after.values())
            and [w.master_pid for w in stack.web] == masters,
        )
    )


def _judged_under_load(
    stack: FaultStack,
    result: ScenarioResult,
    probes: Probes,
    outage: list[float],
    masters: list[int],
    fault: Callable[[OpenLoopLoad], dict],
) -> None:
    """Run `fault` under the browsing load (it appends the outage's start and end to `outage`),
    then judge the probes and phases against the database-outage targets; probes stop after."""
    try:
        run = under_load(stack, fault, after=5)
        result.phases = run.phases
        result.facts.update(run.fault_facts)
        _judge(stack, result, probes, (outage[0], outage[1]), masters, run.phases)
    finally:
        probes.stop()


def restarted(stack: FaultStack, result: ScenarioResult) -> None:
    """PostgreSQL stopped (fast shutdown) for 10 s and started again under 200 req/s of
    browsing, while probes keep asking for pages that need it. Cached anonymous pages may keep
    answering 200; what needs the database must get the 503 page at once, /readyz 503, and
    everything must come back without restarting gunicorn."""
    stack.ensure_web()
    masters = [w.master_pid for w in stack.web]
    probes = Probes(stack).start()
    outage: list[float] = []

    def fault(load: OpenLoopLoad) -> dict:
        outage.append(probes.now())
        stack.cluster.stop(mode="fast")
        time.sleep(DOWN_SECONDS)
        outage.append(probes.now())
        stack.cluster.start()
        return {
            "PostgreSQL down for": f"{outage[1] - outage[0]:.1f} s (pg_ctl stop -m fast, start)"
        }

    _judged_under_load(stack, result, probes, outage, masters, fault)


def exhausted(stack: FaultStack, result: ScenarioResult) -> None:
    """Every connection slot PostgreSQL gives the app's role taken (max_connections=60, the
    superuser's 3 reserved slots aside), the app's own connections then cut
    (pg_terminate_backend), so each worker must connect anew and is refused ("too many
    clients"). Same targets as the restart: 503 pages at once, no hang, recovery on release."""
    import psycopg

    stack.ensure_web()
    masters = [w.master_pid for w in stack.web]
    probes = Probes(stack).start()
    held: list[psycopg.Connection] = []
    outage: list[float] = []

    def fill() -> None:
        while True:
            try:
                held.append(psycopg.connect(stack.database_url, autocommit=True, connect_timeout=5))
            except psycopg.OperationalError:
                return

    def fault(load: OpenLoopLoad) -> dict:
        outage.append(probes.now())
        fill()
        mine = [c.info.backend_pid for c in held]
        with psycopg.connect(stack.cluster.url(), autocommit=True) as admin:
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = 'storefront' AND NOT (pid = ANY(%s))",
                (mine,),
            ).fetchone()[0]
        fill()
        time.sleep(EXHAUSTED_SECONDS)
        outage.append(probes.now())
        count = len(held)
        for conn in held:
            conn.close()
        return {"connections held": count, "app connections cut": cut}

    try:
        _judged_under_load(stack, result, probes, outage, masters, fault)
    finally:
        for conn in held:
            conn.close()
