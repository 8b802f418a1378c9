"""Locust load test of Storefront: realistic visitors, three load shapes.

    make loadtest                       # steady shape, 60 s, against a stack loadtest/run.py starts
    make loadtest SHAPE=stress          # ramp until error rate > 1 % or p95 > 1 s, then stop
    make loadtest SHAPE=browse          # large-dataset browse (deep keyset pages, search)
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

Environment: LOADTEST_SHAPE (steady | browse | stress), LOADTEST_USERS (steady/browse peak,
default 20), LOADTEST_SPAWN_RATE (default 5/s), LOADTEST_DURATION (seconds, default 60),
LOADTEST_SHOPPERS (seeded shoppers to log in as, default 200), LOADTEST_STRESS_STEP (users
added per step, default 10), LOADTEST_STRESS_STEP_SECONDS (default 15), LOADTEST_STRESS_MAX_USERS
(default 400), LOADTEST_STRESS_MAX_SECONDS (default 300), LOADTEST_RESULT (where the stress
shape writes its verdict as JSON).

The login POSTs are rate-limited by nginx per client address (5 r/m, burst 5): loadtest/run.py
therefore runs against gunicorn directly (see there).
"""

from __future__ import annotations

import json
import os
import random
import re

from locust import HttpUser, LoadTestShape, between, task

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
            params["category"] = random.choice(SEEN_CATEGORIES)
        page = random.choice([1, 1, 1, 2, 3, 5])
        if page > 1:
            params["page"] = page
        with self.client.get(
            "/products/", params=params, name="/products/ [listing]", catch_response=True
        ) as r:
            if r.status_code == 404 and "page" in params:
                r.success()  # a small category has fewer pages
                return
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
        with self.client.get(
            f"/products/{slug}/", name="/products/<slug>/", catch_response=True
        ) as r:
            if r.status_code == 404:
                r.success()  # sold out or deactivated meanwhile
                return None
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
            if r.status_code in (200, 409):  # redirected to the cart; 409: not enough stock left
                r.success()
                self.in_cart += r.status_code == 200
            else:
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
            elif r.status_code == 409:  # a stock shortfall: the cart is kept, nothing written
                r.success()
            else:
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


# --- load shapes (one is active: LOADTEST_SHAPE) -------------------------------------------------


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


class SteadyPeak(LoadTestShape):
    """LOADTEST_USERS users (spawned at LOADTEST_SPAWN_RATE/s) for LOADTEST_DURATION seconds."""

    users = _env_int("LOADTEST_USERS", 20)
    spawn_rate = _env_int("LOADTEST_SPAWN_RATE", 5)
    duration = _env_int("LOADTEST_DURATION", 60)

    def tick(self):
        if self.get_run_time() >= self.duration:
            return None
        return self.users, self.spawn_rate


class LargeDatasetBrowse(SteadyPeak):
    """The steady shape with anonymous browsers and API clients only, paging deep into a large
    catalog."""

    def tick(self):
        steady = super().tick()
        return None if steady is None else (*steady, [DeepBrowser, ApiClient])


class DeepBrowser(AnonymousBrowser):
    """An anonymous browser that follows the Next links far (keyset pages)."""

    weight = 3

    @task(6)
    def deep_listing(self) -> None:
        self.browse_listing(deep=random.choice([5, 10, 20]))


class StressRamp(LoadTestShape):
    """Add LOADTEST_STRESS_STEP users every LOADTEST_STRESS_STEP_SECONDS until it breaks.

    Every few seconds the runner's stats are checked: over the last window, an error rate
    above 1 % or a p95 above 1 s ends the test (tick returns None) and the user count reached
    is recorded (LOADTEST_RESULT, JSON) and printed. Also stops at LOADTEST_STRESS_MAX_USERS or
    LOADTEST_STRESS_MAX_SECONDS, whichever comes first.
    """

    step = _env_int("LOADTEST_STRESS_STEP", 10)
    step_seconds = _env_int("LOADTEST_STRESS_STEP_SECONDS", 15)
    max_users = _env_int("LOADTEST_STRESS_MAX_USERS", 400)
    max_seconds = _env_int("LOADTEST_STRESS_MAX_SECONDS", 300)
    check_every = 5.0
    max_error_rate = 0.01
    max_p95_ms = 1000.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_check = 0.0
        self._last_counts = (0, 0)
        self.verdict: dict | None = None

    def _window(self) -> tuple[float, float | None, int]:
        total = self.runner.stats.total
        requests, failures = total.num_requests, total.num_failures
        d_req, d_fail = requests - self._last_counts[0], failures - self._last_counts[1]
        self._last_counts = (requests, failures)
        error_rate = d_fail / d_req if d_req else 0.0
        # The runner's rolling window (CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW, 10 s).
        p95 = total.get_current_response_time_percentile(0.95)
        return error_rate, p95, d_req

    def _stop(self, reason: str, users: int) -> None:
        total = self.runner.stats.total
        self.verdict = {
            "reason": reason,
            "users_reached": users,
            "run_time_s": round(self.get_run_time(), 1),
            "requests": total.num_requests,
            "failures": total.num_failures,
            "p95_ms_overall": total.get_response_time_percentile(0.95),
            "rps_overall": round(total.total_rps, 1),
        }
        print(f"STRESS RESULT {json.dumps(self.verdict)}", flush=True)
        path = os.environ.get("LOADTEST_RESULT")
        if path:
            with open(path, "w") as out:
                json.dump(self.verdict, out, indent=1)

    def tick(self):
        if self.verdict is not None:
            return None
        run_time = self.get_run_time()
        users = min(self.max_users, self.step * (1 + int(run_time // self.step_seconds)))
        current = self.get_current_user_count()
        if run_time - self._last_check >= self.check_every and run_time > self.step_seconds:
            self._last_check = run_time
            error_rate, p95, window_requests = self._window()
            if window_requests >= 20 and error_rate > self.max_error_rate:
                self._stop(f"error rate {error_rate:.1%} > 1% at {current} users", current)
                return None
            if p95 is not None and p95 > self.max_p95_ms:
                self._stop(f"p95 {p95:.0f} ms > 1000 ms at {current} users", current)
                return None
        if run_time >= self.max_seconds:
            self._stop(f"time limit {self.max_seconds} s without breaking", current)
            return None
        if current >= self.max_users and run_time >= self.max_seconds:
            return None
        return users, max(1, self.step)


_SHAPES = {"steady": SteadyPeak, "browse": LargeDatasetBrowse, "stress": StressRamp}
_selected = os.environ.get("LOADTEST_SHAPE", "steady")
if _selected not in _SHAPES:
    raise SystemExit(f"LOADTEST_SHAPE must be one of {', '.join(_SHAPES)}, not {_selected!r}")
# Locust uses the one LoadTestShape subclass it finds in this module's namespace: keep only the
# selected one visible. DeepBrowser is a user class of the browse shape only.
for _name, _cls in _SHAPES.items():
    if _name != _selected:
        del globals()[_cls.__name__]
if _selected != "browse":
    del globals()["DeepBrowser"]
del _name, _cls
