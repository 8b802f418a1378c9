"""Locust load test of Storefront: realistic visitors, five load shapes.

    make loadtest                       # steady shape, 60 s, against a stack loadtest/run.py starts
    make loadtest SHAPE=peak            # one minute at a fixed request rate (the bench's figure)
    make loadtest SHAPE=large           # the browse shape on a 1,000,000-product catalog
    make loadtest SHAPE=stress          # ramp until error rate > 1 % or p95 > 1 s, then stop
    make loadtest SHAPE=browse          # large-dataset browse (deep keyset pages, search), 100k
    LOADTEST_HOST=http://127.0.0.1:8000 make loadtest     # an already running stack

Run directly: `locust -f loadtest/locustfile.py --headless --host URL` with LOADTEST_SHAPE.

Users (weights in brackets):
- AnonymousBrowser [6]: home and listing pages (sorts, categories, numbered and ?after= pages),
  searches, product pages.
- Shopper [2]: logs in as a seeded shopper (shopper00001… / "shopper-2026"), adds products to
  the cart (POST /cart/add/<id>/ with the page's CSRF token) and checks out (/checkout/).
- DashboardCustomer [1]: logs in, opens /dashboard/ and the order history.
- StaffUser [1, at most LOADTEST_STAFF_USERS]: the demo staff account on /staff/dashboard/.
- ApiClient [2]: token from /api/auth/token/ (a new one per client, stored hashed, expiring),
  then /api/products/ following the cursors; revokes it (POST /api/auth/logout/) when it stops.

Only 2xx answers are successes: any other final status (a 404, a 409 stock shortfall, a 429 of
nginx's limiter, a 5xx, a redirect left unfollowed) or no answer is a failure in the records
below, which loadtest/run.py's summaries count, and never throughput (Locust's own statistics
agree for 4xx, 5xx and no answer; the tasks no longer mark a 404 or 409 a success).

Environment: LOADTEST_SHAPE (steady | browse | large | peak | stress), LOADTEST_USERS
(steady/browse/large users, default 20; peak: the users sharing the rate), LOADTEST_SPAWN_RATE
(default 5/s), LOADTEST_DURATION (seconds, default 60), LOADTEST_RATE (peak: requests per
second, all users together), LOADTEST_WARMUP (peak: seconds after the last user started before
the measured minute, default 15), LOADTEST_SHOPPERS (seeded shoppers to log in as, default
200), LOADTEST_STRESS_STEP (users added per step, default 20), LOADTEST_STRESS_STEP_SECONDS
(default 15), LOADTEST_STRESS_MAX_USERS (default 600), LOADTEST_STRESS_MAX_SECONDS (default
300), LOADTEST_RECORDS (where every request is written at the end as JSON: end time, response
time, status, 2xx or not, name; with the peak shape's measured window, the users over time and
the stress verdict; loadtest/run.py computes the summaries from it).

Every simulated user comes from 127.0.0.1: loadtest/run.py raises nginx's per-address limits
for its run (see there).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable

import gevent
from locust import HttpUser, LoadTestShape, between, constant, events, task
from locust.clients import HttpSession

SHOPPER_PASSWORD = "shopper-2026"  # storefront/seeding/shoppers.py SHOPPER_PASSWORD
STAFF = ("staff", "demo-staff-2026")  # storefront/seeding/demo.py DEMO_STAFF
SHOPPERS = int(os.environ.get("LOADTEST_SHOPPERS", "200"))
SORTS = ["", "newest", "price_asc", "price_desc", "name"]
SEARCHES = ["lamp", "oak desk", "chair", "mug", "linen", '"desk lamp"', "lamp -desk", "wool"]

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PRODUCT_LINK = re.compile(r'href="/products/([a-z0-9-]+)/"')
AFTER_LINK = re.compile(r'href="\?([^"]*after=[^"&]+[^"]*)"')
CATEGORY_LINK = re.compile(r"[?&]category=([a-z0-9-]+)")
CART_ADD = re.compile(r'action="/cart/add/(\d+)/"')

# What the pages showed so far, shared by every user of this process (cheap discovery).
SEEN_SLUGS: list[str] = []
SEEN_CATEGORIES: list[str] = []


def _remember(html: str) -> None:
    if len(SEEN_SLUGS) < 500:
        SEEN_SLUGS.extend(PRODUCT_LINK.findall(html)[:24])
    if len(SEEN_CATEGORIES) < 50:
        SEEN_CATEGORIES.extend(set(CATEGORY_LINK.findall(html)) - set(SEEN_CATEGORIES))


def shopper_name(number: int) -> str:
    width = max(5, len(str(SHOPPERS)))  # as storefront/seeding/shoppers.py numbers them
    return f"shopper{number:0{width}d}"


class BrowsingMixin:
    def browse_listing(self, deep: int = 0) -> None:
        params = {}
        sort = random.choice(SORTS)
        if sort:
            params["sort"] = sort
        if SEEN_CATEGORIES and random.random() < 0.3:
            # Page 1 only: a small category has fewer pages, and asking for one it lacks would
            # be a 404 of the script's making (deeper pages come from its Next links).
            params["category"] = random.choice(SEEN_CATEGORIES)
        else:
            page = random.choice([1, 1, 1, 2, 3, 5])  # the catalog's numbered pages are 1-5
            if page > 1:
                params["page"] = page
        with self.client.get(
            "/products/", params=params, name="/products/ [listing]", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"listing {r.status_code}")
                return
            html = r.text
        _remember(html)
        # Follow the "Next" cursor links deeper into the catalog.
        for _ in range(deep):
            match = AFTER_LINK.search(html)
            if not match:
                break
            query = match.group(1).replace("&amp;", "&")
            r = self.client.get(f"/products/?{query}", name="/products/?after= [keyset]")
            if r.status_code != 200:
                break
            html = r.text

    def search(self) -> None:
        self.client.get(
            "/products/", params={"q": random.choice(SEARCHES)}, name="/products/?q= [search]"
        )

    def product_page(self) -> str | None:
        if not SEEN_SLUGS:
            self.client.get("/", name="/ [home]")
            return None
        slug = random.choice(SEEN_SLUGS)
        r = self.client.get(f"/products/{slug}/", name="/products/<slug>/")
        return r.text if r.status_code == 200 else None

    def login(self, username: str, password: str) -> bool:
        r = self.client.get("/accounts/login/", name="/accounts/login/")
        match = CSRF_INPUT.search(r.text or "")
        if not match:
            return False
        with self.client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": match.group(1),
            },
            headers={"Referer": f"{self.host}/accounts/login/"},
            name="/accounts/login/ [POST]",
            catch_response=True,
        ) as r:
            # Success redirects (followed) to a page that shows the user; failure is a 400.
            if r.status_code != 200 or "sessionid" not in self.client.cookies:
                r.failure(f"login as {username} failed: {r.status_code}")
                return False
        return True


class AnonymousBrowser(BrowsingMixin, HttpUser):
    weight = 6
    wait_time = between(1, 4)

    @task(5)
    def listing(self) -> None:
        self.browse_listing(deep=random.choice([0, 0, 1, 3]))

    @task(2)
    def searching(self) -> None:
        self.search()

    @task(4)
    def product(self) -> None:
        self.product_page()

    @task(1)
    def home(self) -> None:
        r = self.client.get("/", name="/ [home]")
        _remember(r.text or "")


class Shopper(BrowsingMixin, HttpUser):
    weight = 2
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.logged_in = self.login(shopper_name(random.randint(1, SHOPPERS)), SHOPPER_PASSWORD)
        self.in_cart = 0

    @task(3)
    def browse(self) -> None:
        self.browse_listing()

    @task(3)
    def add_to_cart(self) -> None:
        html = self.product_page()
        if not html:
            return
        action = CART_ADD.search(html)
        if not action:
            return  # out of stock: no form
        token = CSRF_INPUT.search(html)
        if token:  # signed in: the page is the visitor's own and holds the token
            csrf = token.group(1)
        else:  # a cached page: the token comes on submit, as add-to-cart.js fetches it
            with self.client.get(
                "/cart/token/", name="/cart/token/", catch_response=True
            ) as answer:
                if answer.status_code != 200:
                    answer.failure(f"cart token {answer.status_code}")
                    return
                csrf = answer.json()["token"]
        with self.client.post(
            f"/cart/add/{action.group(1)}/",
            data={"quantity": "1", "csrfmiddlewaretoken": csrf},
            headers={"Referer": self.host + "/"},
            name="/cart/add/<id>/ [POST]",
            catch_response=True,
        ) as r:
            if r.status_code == 200:  # redirected to the cart
                self.in_cart += 1
            else:  # a 409 (not enough stock left) too: only 2xx answers are successes
                r.failure(f"cart add {r.status_code}")

    @task(1)
    def checkout(self) -> None:
        if not self.logged_in or not self.in_cart:
            return
        r = self.client.get("/checkout/", name="/checkout/")
        token = CSRF_INPUT.search(r.text or "")
        if r.status_code != 200 or not token:
            return
        with self.client.post(
            "/checkout/",
            data={
                "shipping_name": "Load Test",
                "shipping_address": "1 Loopback Lane\n127 0.0.1\nLocalhost",
                "csrfmiddlewaretoken": token.group(1),
            },
            headers={"Referer": self.host + "/checkout/"},
            name="/checkout/ [POST]",
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                self.in_cart = 0
            else:  # a 409 (stock shortfall: the cart is kept, nothing written) too
                r.failure(f"checkout {r.status_code}")

    @task(1)
    def cart(self) -> None:
        self.client.get("/cart/", name="/cart/")


class DashboardCustomer(BrowsingMixin, HttpUser):
    weight = 1
    wait_time = between(2, 6)

    def on_start(self) -> None:
        self.login(shopper_name(random.randint(1, SHOPPERS)), SHOPPER_PASSWORD)

    @task(3)
    def dashboard(self) -> None:
        self.client.get("/dashboard/", name="/dashboard/")

    @task(1)
    def history(self) -> None:
        self.client.get("/orders/", name="/orders/")


class StaffUser(BrowsingMixin, HttpUser):
    weight = 1
    fixed_count = int(os.environ.get("LOADTEST_STAFF_USERS", "1"))
    wait_time = between(3, 8)

    def on_start(self) -> None:
        self.login(*STAFF)

    @task
    def staff_dashboard(self) -> None:
        self.client.get("/staff/dashboard/", name="/staff/dashboard/")


class ApiClient(HttpUser):
    weight = 2
    wait_time = between(1, 3)

    def on_start(self) -> None:
        username = shopper_name(random.randint(1, SHOPPERS))
        r = self.client.post(
            "/api/auth/token/",
            json={"username": username, "password": SHOPPER_PASSWORD},
            name="/api/auth/token/ [POST]",
        )
        token = r.json().get("token") if r.status_code == 200 else None
        if token:
            self.client.headers["Authorization"] = f"Token {token}"

    def on_stop(self) -> None:
        # Every login makes a token: revoke it rather than leave one per simulated client.
        if "Authorization" in self.client.headers:
            self.client.post("/api/auth/logout/", name="/api/auth/logout/ [POST]")

    @task(4)
    def products(self) -> None:
        params = {"page_size": random.choice([24, 50, 100])}
        sort = random.choice(["newest", "price_asc", "price_desc", "name"])
        params["sort"] = sort
        r = self.client.get("/api/products/", params=params, name="/api/products/")
        # Follow the cursors a few pages on (the `next` link carries the cursor).
        for _ in range(random.choice([0, 1, 3])):
            if r.status_code != 200:
                return
            following = r.json().get("next")
            if not following:
                return
            r = self.client.get(following, name="/api/products/?cursor=")

    @task(1)
    def orders(self) -> None:
        if "Authorization" in self.client.headers:
            self.client.get("/api/orders/", name="/api/orders/")


# --- what every request answered (loadtest/run.py's summaries) ---------------------------------

SHAPE = os.environ.get("LOADTEST_SHAPE", "steady")
# [end time (epoch s), response time ms, final status (0: no answer), 1 if a success, name]
RECORDS: list[list] = []
COUNTS = {"ok": 0, "failed": 0}
# Written with the records: the peak shape's measured window, users over time, stress verdict.
RUN: dict = {"shape": SHAPE, "window": None, "users": [], "verdict": None, "pacer": None}


def is_success(status: int, exception: object) -> bool:
    """Only a 2xx final answer the task did not mark failed (a login without a session)."""
    return exception is None and 200 <= status < 300


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: object = None,
    exception: object = None,
    start_time: float | None = None,
    **_: object,
) -> None:
    status = int(getattr(response, "status_code", 0) or 0)
    ok = is_success(status, exception)
    started = start_time if start_time is not None else time.time() - response_time / 1000
    end = round(started + response_time / 1000, 4)
    RECORDS.append([end, round(response_time, 2), status, int(ok), f"{request_type} {name}"])
    COUNTS["ok" if ok else "failed"] += 1


@events.test_stop.add_listener
def _write_records(**_: object) -> None:
    if PACER is not None:
        RUN["pacer"] = PACER.describe()
    path = os.environ.get("LOADTEST_RECORDS")
    if path:
        with open(path, "w") as out:
            json.dump({**RUN, "records": RECORDS}, out)


class RequestPacer:
    """Hands out request slots so that all users together make `rate` requests a second.

    Locust's constant_throughput paces each user's tasks, but a task here makes one request (a
    product page) or twenty (a listing and its Next pages), so no task rate is a request rate.
    Instead each request (HttpSession.request, wrapped below for the peak shape) first takes
    the next slot of one timeline shared by all users, 1/rate seconds apart, and sleeps until
    it (gevent runs one greenlet at a time: no lock needed). Users then need no think time.
    When they cannot keep up (the server answers slower than users × rate allows) the
    timeline falls behind; it never banks more than `max_idle` seconds of unused slots, so it
    never bursts to catch up.
    """

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, max_idle: float = 0.5
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.max_idle = max_idle
        self.slots = 0
        self.next_slot: float | None = None

    def delay(self) -> float:
        """Seconds the calling request waits for its slot."""
        now = self.clock()
        if self.next_slot is None or self.next_slot < now - self.max_idle:
            self.next_slot = now
        start = self.next_slot
        self.next_slot = start + 1 / self.rate
        self.slots += 1
        return max(0.0, start - now)

    def describe(self) -> dict:
        return {"rate": self.rate, "slots_taken": self.slots, "max_idle_s": self.max_idle}


PACER: RequestPacer | None = None


def _paced(request: Callable) -> Callable:
    """HttpSession.request, after waiting for the pacer's next slot (outside the timing)."""

    def paced_request(session: HttpSession, method: str, url: str, *args, **kwargs):
        assert PACER is not None
        gevent.sleep(PACER.delay())
        return request(session, method, url, *args, **kwargs)

    return paced_request


# --- load shapes (one is active: LOADTEST_SHAPE) -------------------------------------------------


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _note_users(shape: LoadTestShape) -> None:
    """Users over time, for joining the resource samples (loadtest/run.py) to a user count."""
    RUN["users"].append([round(time.time(), 2), shape.get_current_user_count()])


class SteadyPeak(LoadTestShape):
    """LOADTEST_USERS users (spawned at LOADTEST_SPAWN_RATE/s) for LOADTEST_DURATION seconds."""

    users = _env_int("LOADTEST_USERS", 20)
    spawn_rate = _env_int("LOADTEST_SPAWN_RATE", 5)
    duration = _env_int("LOADTEST_DURATION", 60)

    def tick(self):
        _note_users(self)
        if self.get_run_time() >= self.duration:
            return None
        return self.users, self.spawn_rate


class LargeDatasetBrowse(SteadyPeak):
    """The steady shape with anonymous browsers and API clients only, paging deep into a large
    catalog (browse: 100k products, large: 1,000,000)."""

    def tick(self):
        steady = super().tick()
        return None if steady is None else (*steady, [DeepBrowser, ApiClient])


class DeepBrowser(AnonymousBrowser):
    """An anonymous browser that follows the Next links far (keyset pages)."""

    weight = 3

    @task(6)
    def deep_listing(self) -> None:
        self.browse_listing(deep=random.choice([5, 10, 20]))


class PeakRate(LoadTestShape):
    """The steady mix at a fixed request rate: LOADTEST_USERS users share LOADTEST_RATE requests
    a second (RequestPacer replaces their think time). They start at LOADTEST_SPAWN_RATE/s
    (Locust's start() returns once all are started), LOADTEST_WARMUP seconds more let their
    logins finish and the caches fill, then LOADTEST_DURATION seconds are measured:
    RUN["window"] holds that interval (epoch seconds), which loadtest/run.py summarizes."""

    users = _env_int("LOADTEST_USERS", 20)
    spawn_rate = _env_int("LOADTEST_SPAWN_RATE", 5)
    warmup = _env_int("LOADTEST_WARMUP", 15)
    duration = _env_int("LOADTEST_DURATION", 60)

    def tick(self):
        _note_users(self)
        now = time.time()
        window = RUN["window"]
        if window is None:
            if self.get_run_time() >= self.users / self.spawn_rate + self.warmup:
                RUN["window"] = {"start": round(now, 3), "end": round(now + self.duration, 3)}
        elif now >= window["end"]:
            return None
        return self.users, self.spawn_rate


class StressRamp(LoadTestShape):
    """LOADTEST_STRESS_STEP users more every LOADTEST_STRESS_STEP_SECONDS until it breaks.

    After the first step's users, the next ones start one at a time, spread evenly (a step of
    20 every 15 s: one user every 0.75 s): a whole step starting in one second would send its
    logins (PBKDF2 password hashing, by design some 0.3-1 s of CPU each) together, and the
    queue behind that burst, not the user count, would trip the p95.

    Every few seconds the window since the last check is judged: more than 1 % of its answers
    not 2xx (or none at all), or a p95 above 1 s (Locust's rolling 10 s window), ends the test
    (tick returns None); the user count reached, the window's 2xx rate and the wall-clock time
    are recorded (RUN["verdict"], written with the records) and printed. Also stops at
    LOADTEST_STRESS_MAX_USERS users or LOADTEST_STRESS_MAX_SECONDS, whichever comes first.
    """

    step = _env_int("LOADTEST_STRESS_STEP", 20)
    step_seconds = _env_int("LOADTEST_STRESS_STEP_SECONDS", 15)
    max_users = _env_int("LOADTEST_STRESS_MAX_USERS", 600)
    max_seconds = _env_int("LOADTEST_STRESS_MAX_SECONDS", 300)
    check_every = 5.0
    max_error_rate = 0.01
    max_p95_ms = 1000.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_check = 0.0
        self._last_counts = (0, 0)
        self.verdict: dict | None = None

    def _window(self, seconds: float) -> dict:
        ok, failed = COUNTS["ok"], COUNTS["failed"]
        d_ok, d_failed = ok - self._last_counts[0], failed - self._last_counts[1]
        self._last_counts = (ok, failed)
        answered = d_ok + d_failed
        return {
            "requests": answered,
            "error_rate": d_failed / answered if answered else 0.0,
            "rate_2xx": d_ok / seconds if seconds > 0 else 0.0,
            # The runner's rolling window (CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW, 10 s).
            "p95_ms": self.runner.stats.total.get_current_response_time_percentile(0.95),
        }

    def _stop(self, reason: str, users: int, window: dict | None) -> None:
        total = self.runner.stats.total
        self.verdict = {
            "reason": reason,
            "users_reached": users,
            "stopped_at": round(time.time(), 2),
            "run_time_s": round(self.get_run_time(), 1),
            "window_s": self.check_every,
            "window_requests": window["requests"] if window else None,
            "window_rate_2xx": round(window["rate_2xx"], 1) if window else None,
            "window_error_rate": round(window["error_rate"], 4) if window else None,
            "window_p95_ms": window["p95_ms"] if window else None,
            "requests": total.num_requests,
            "ok_2xx": COUNTS["ok"],
            "failures": COUNTS["failed"],
            "p95_ms_overall": total.get_response_time_percentile(0.95),
        }
        RUN["verdict"] = self.verdict
        print(f"STRESS RESULT {json.dumps(self.verdict)}", flush=True)

    def tick(self):
        if self.verdict is not None:
            return None
        _note_users(self)
        run_time = self.get_run_time()
        users = min(self.max_users, self.step + int(run_time * self.step / self.step_seconds))
        current = self.get_current_user_count()
        if run_time - self._last_check >= self.check_every and run_time > self.step_seconds:
            window = self._window(run_time - self._last_check)
            self._last_check = run_time
            if window["requests"] == 0:
                self._stop(
                    f"no answers in {self.check_every:.0f} s at {current} users", current, window
                )
                return None
            if window["requests"] >= 20 and window["error_rate"] > self.max_error_rate:
                self._stop(
                    f"error rate {window['error_rate']:.1%} > 1% at {current} users",
                    current,
                    window,
                )
                return None
            if window["p95_ms"] is not None and window["p95_ms"] > self.max_p95_ms:
                self._stop(
                    f"p95 {window['p95_ms']:.0f} ms > 1000 ms at {current} users", current, window
                )
                return None
        if run_time >= self.max_seconds:
            self._stop(f"time limit {self.max_seconds} s without breaking", current, None)
            return None
        return users, max(1, self.step)


_SHAPES = {
    "steady": SteadyPeak,
    "browse": LargeDatasetBrowse,
    "large": LargeDatasetBrowse,
    "peak": PeakRate,
    "stress": StressRamp,
}
if SHAPE not in _SHAPES:
    raise SystemExit(f"LOADTEST_SHAPE must be one of {', '.join(_SHAPES)}, not {SHAPE!r}")
# Locust uses the one LoadTestShape subclass it finds in this module's namespace: keep only the
# selected one visible. DeepBrowser is a user class of the browse and large shapes only.
for _cls in set(_SHAPES.values()) - {_SHAPES[SHAPE]}:
    del globals()[_cls.__name__]
if _SHAPES[SHAPE] is not _SHAPES["browse"]:
    del globals()["DeepBrowser"]
del _cls
if SHAPE == "peak":
    PACER = RequestPacer(_env_float("LOADTEST_RATE", 20.0))
    HttpSession.request = _paced(HttpSession.request)
    for _user in (AnonymousBrowser, Shopper, DashboardCustomer, StaffUser, ApiClient):
        _user.wait_time = constant(0)  # the same users and tasks; the pacer sets the pace
    del _user
