"""nginx reloaded under load: `nginx -s reload` (SIGHUP to the master) five times."""

from __future__ import annotations

import os
import signal
import time

from faults.load import OpenLoopLoad
from faults.report import ScenarioResult
from faults.scenarios.common import no_failures_target, under_load
from faults.stack import FaultStack

RELOADS = 5
INTERVAL = 2.0


def reload(stack: FaultStack, result: ScenarioResult) -> None:
    """SIGHUP to nginx's master (what `nginx -s reload` sends) five times, 2 s apart, under
    200 req/s: new workers start with the re-read config, old ones finish their requests."""
    stack.ensure_web()

    def fault(load: OpenLoopLoad) -> dict:
        for _ in range(RELOADS):
            os.kill(stack.nginx.proc.pid, signal.SIGHUP)
            time.sleep(INTERVAL)
        return {"reloads": f"{RELOADS}, {INTERVAL:g} s apart"}

    run = under_load(stack, fault)
    result.phases = run.phases
    result.facts.update(run.fault_facts)
    no_failures_target(result, run)
