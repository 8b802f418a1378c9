"""What every scenario shares: the browsing mix, a fault under load, and shoppers who check out."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from faults.load import OpenLoopLoad, Request
from faults.report import ScenarioResult, Target
from faults.stack import CUSTOMER_PASSWORD, FaultStack
from faults.stats import Sample, phase_summaries
from harness import Client, log

RATE = 200  # requests per second, the "~200 req/s"


def browse_requests(stack: FaultStack) -> Callable[[int], Request]:
    """Anonymous browsing: home, listing pages (plain, page 2, sorted), product pages."""
    paths = ["/", "/products/", "/products/?page=2", "/products/?sort=price_asc"]
    paths += [f"/products/{slug}/" for slug in stack.slugs[:24]]
    return lambda i: Request("GET", paths[i % len(paths)])


@dataclass
class LoadRun:
    samples: list[Sample]
    marks: dict[str, float]
    phases: dict[str, dict]
    fault_facts: dict = field(default_factory=dict)


def under_load(
    stack: FaultStack,
    fault: Callable[[OpenLoopLoad], dict | None],
    *,
    before: float = 5,
    after: float = 5,
    rate: float = RATE,
    request_for: Callable[[int], Request] | None = None,
    accepted: frozenset[str] = frozenset(),
    timeout: float = 10,
    max_seconds: float = 300,
) -> LoadRun:
    """Load at `rate` for `before` seconds, then `fault(load)` (phase "during" lasts as long
    as it runs), then `after` seconds more. Bounded by `max_seconds` of load in all."""
    load = OpenLoopLoad(
        stack.url,
        rate=rate,
        duration=max_seconds,
        request_for=request_for or browse_requests(stack),
        timeout=timeout,
    ).start()
    facts: dict = {}
    try:
        if before > 0:
            time.sleep(before)
            load.mark("during")
        else:
            load.marks["during"] = 0.0  # the whole run is under the fault
        facts = fault(load) or {}
        load.mark("after")
        time.sleep(after)
    finally:
        samples = load.stop()
    return LoadRun(samples, load.marks, phase_summaries(samples, load.marks, accepted), facts)


def no_failures_target(result: ScenarioResult, run: LoadRun, what: str = "failed requests") -> None:
    failed = run.phases["all"]["failed"]
    result.add(Target.equal(what, failed, 0))


@dataclass
class Shopper:
    """A signed-in customer who keeps buying one item: GET /checkout/ (a fresh idempotency key
    in the form), POST it; a POST without an answer (reset, 502) is submitted again with the
    same key, as a user pressing the button again would."""

    stack: FaultStack
    username: str
    product_id: int
    attempts: list[dict] = field(default_factory=list)  # one per form (idempotency key)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = Client(
            self.stack.url, headers={"Host": "localhost"}, origin="http://localhost"
        )

    def login(self) -> None:
        status, _, _ = self.client.form_post(
            "/accounts/login/", {"username": self.username, "password": CUSTOMER_PASSWORD}
        )
        if status != 302:
            raise RuntimeError(f"login of {self.username} answered {status}")

    def _post(self, path: str, form: dict[str, str], token: str) -> int:
        from urllib.parse import urlencode

        status, _, _ = self.client.request(
            "POST",
            path,
            body=urlencode({"csrfmiddlewaretoken": token, **form}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "http://localhost",
                "Referer": f"http://localhost{path}",
            },
            timeout=15,
        )
        return status

    def buy_once(self) -> None:
        _, _, token_page = self.client.request("GET", "/cart/token/")
        token = _csrf_from(token_page) or self.client.cookies.get("csrftoken").value  # type: ignore[union-attr]
        self._post(f"/cart/add/{self.product_id}/", {"quantity": "1"}, token)
        status, _, page = self.client.request("GET", "/checkout/")
        if status != 200:
            raise RuntimeError(f"checkout form answered {status}")
        key = re.search(rb'name="idempotency_key" value="([^"]+)"', page)
        name = re.search(rb'name="shipping_name" value="([^"]*)"', page)
        token = _csrf_from(page)
        if not key or not token:
            raise RuntimeError("no idempotency key or CSRF token in the checkout form")
        form = {
            "idempotency_key": key.group(1).decode(),
            "shipping_name": (name.group(1).decode() if name and name.group(1) else "Fault Tester"),
            "shipping_address": "1 Loopback Road\n127 Localhost",
        }
        attempt = {"key": form["idempotency_key"], "statuses": []}
        self.attempts.append(attempt)
        for _ in range(5):
            try:
                status = self._post("/checkout/", form, token)
            except OSError as exc:
                attempt["statuses"].append(type(exc).__name__)
                time.sleep(0.5)
                continue
            attempt["statuses"].append(status)
            if status < 500:
                return
            time.sleep(0.5)

    def run(self, stop: threading.Event) -> None:
        try:
            self.login()
        except Exception as exc:
            self.errors.append(f"login: {exc}")
            return
        while not stop.is_set():
            try:
                self.buy_once()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)


def _csrf_from(page: bytes) -> str | None:
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if found:
        return found.group(1).decode()
    found = re.search(rb'"(?:token|csrfToken|csrf_token)"\s*:\s*"([^"]+)"', page)
    return found.group(1).decode() if found else None


class Shoppers:
    """`count` shoppers buying in threads until `stop()`."""

    def __init__(self, stack: FaultStack, count: int) -> None:
        self.stop_event = threading.Event()
        self.shoppers = [
            Shopper(stack, stack.customers[i % len(stack.customers)],
                    stack.stocked_ids[i % len(stack.stocked_ids)])
            for i in range(count)
        ]  # fmt: skip
        self.threads = [
            threading.Thread(target=s.run, args=(self.stop_event,), daemon=True)
            for s in self.shoppers
        ]

    def start(self) -> Shoppers:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> list[dict]:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        errors = [e for s in self.shoppers for e in s.errors]
        if errors:
            log(f"shopper errors: {errors[:5]}")
        return [a for s in self.shoppers for a in s.attempts]
