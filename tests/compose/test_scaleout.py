"""The scaled-out topology (compose.yaml + compose.scaleout.yaml) run for real: `make compose-test`.

One project of its own (ports on 127.0.0.1 only, an env file made from env.example as in
test_compose_stack.py, whose helpers this reuses): nginx in front of 3 web replicas, 2 Celery
workers and a beat, PgBouncer in front of a PostgreSQL primary with a streaming replica, and a
Redis master with a replica watched by 3 sentinels. Brought up, every healthcheck waited for,
then: the topology and its replication (a standby in recovery that the primary streams to, the
sentinels agreeing on the master), a shopper's way through nginx with plain HTTP requests (home,
product, login, cart, checkout: the order on the primary and then on the replica, its email
sent by a worker that takes tasks from the Sentinel broker), and a bounded load over a mix of
pages (20 s at 40 requests/s from a thread pool here) served by all 3 replicas with no 5xx while
PgBouncer holds its server connections to its pool size. Torn down with its volumes.
Figures go to test-output/compose/scaleout-figures.json and docs/deploy-compose.md ("Scale-out
rehearsal").
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import re
import secrets
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from harness.processes import free_port
from harness.served import mail_text
from harness.smtp import SmtpSink, serving
from storefront.seeding.demo import DEMO_CUSTOMER
from tests.compose.test_compose_stack import (
    APP_IMAGE,
    DOCKER_DIR,
    LOCAL_IMAGES,
    OUTPUT,
    OVERRIDE,
    Stack,
    app_env_file,
    container_states,
    docker0_address,
    docker_logs,
    https,
    inspect,
    require_engine_and_images,
    self_signed,
)

pytestmark = [pytest.mark.stack, pytest.mark.compose]

PROJECT = "sfscaleouttest"
PGBOUNCER_IMAGE = "local/pgbouncer:1.18-bookworm"
POOL_SIZE = 20
ADMIN_PASSWORD = secrets.token_urlsafe(18)
REPLICATION_PASSWORD = secrets.token_urlsafe(18)
PG = ("-U", "storefront", "-d", "storefront")
# What the topology is made of: service -> containers.
TOPOLOGY = {"nginx": 1, "web": 3, "worker": 2, "beat": 1, "migrate": 1, "pgbouncer": 1,
            "postgres": 1, "postgres-replica": 1, "redis": 1, "redis-replica": 1,
            "sentinel-1": 1, "sentinel-2": 1, "sentinel-3": 1, "cache": 1, "memcached": 1,
            "certbot": 1}  # fmt: skip
# Users the new services run as (numeric, from the images' USER).
NEW_SERVICE_USERS = {"pgbouncer": "10071", "postgres-replica": "10070", "redis-replica": "10079",
                     "sentinel-1": "10079"}  # fmt: skip
LOAD_SECONDS = 20
LOAD_RATE = 40  # requests per second, scheduled (open loop)
LOAD_THREADS = 16
FIGURES: dict[str, object] = {}


@dataclass
class ScaleoutStack(Stack):
    """compose.yaml + compose.scaleout.yaml (+ the test's SMTP override), one project."""

    @property
    def files(self) -> list[str]:
        return ["-f", str(DOCKER_DIR / "compose.yaml"),
                "-f", str(DOCKER_DIR / "compose.scaleout.yaml"),
                "-f", str(self.work / "override.yaml")]  # fmt: skip

    def sql(self, service: str, query: str) -> str:
        """`query`'s rows (psql -tA) on the PostgreSQL of `service`, over its local socket."""
        return self.compose("exec", "-T", service, "psql", *PG, "-tAc", query).strip()

    def pools(self) -> list[dict[str, str]]:
        """PgBouncer's SHOW POOLS, from its admin console."""
        out = self.compose(
            "exec", "-T", "-e", f"PGPASSWORD={ADMIN_PASSWORD}", "pgbouncer", "psql", "--csv",
            "-h", "127.0.0.1", "-p", "6432", "-U", "postgres", "-d", "pgbouncer",
            "-c", "SHOW POOLS",
        )  # fmt: skip
        return list(csv.DictReader(io.StringIO(out)))

    def sentinel_masters(self) -> dict[str, str]:
        """Each sentinel's answer: the master's host:port."""
        views = {}
        for n in (1, 2, 3):
            out = self.compose("exec", "-T", f"sentinel-{n}", "redis-cli", "-p", "26379",
                               "sentinel", "get-master-addr-by-name", "storefront")  # fmt: skip
            views[f"sentinel-{n}"] = ":".join(out.split())
        return views


def server_connections(pools: list[dict[str, str]]) -> int:
    """Server connections PgBouncer holds to the app's database, in any state."""
    columns = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
    return sum(int(p[c]) for p in pools if p["database"] == "storefront" for c in columns)


def client_connections(pools: list[dict[str, str]]) -> int:
    """Client connections to the app's database (active or waiting for a server)."""
    return sum(int(p[c]) for p in pools if p["database"] == "storefront"
               for c in ("cl_active", "cl_waiting"))  # fmt: skip


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleoutStack]:
    require_engine_and_images([*LOCAL_IMAGES.values(), PGBOUNCER_IMAGE])
    work = tmp_path_factory.mktemp("scaleout")
    http_port, https_port = free_port(), free_port()
    self_signed(work / "certs", "storefront-scaleout-test")
    with serving(SmtpSink(host=docker0_address(), port=free_port())) as smtp:
        app_env_file(work / "app.env", https_port, smtp)
        compose_env = {
            "COMPOSE_PROJECT_NAME": PROJECT,
            "STOREFRONT_ENV_FILE": str(work / "app.env"),
            "STOREFRONT_CERTS_DIR": str(work / "certs"),
            "NGINX_PUBLISH_ADDRESS": "127.0.0.1",
            "NGINX_HTTP_PORT": str(http_port),
            "NGINX_HTTPS_PORT": str(https_port),
            "POSTGRES_PASSWORD": "compose-test-password",
            "POSTGRES_REPLICATION_PASSWORD": REPLICATION_PASSWORD,
            "PGBOUNCER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PGBOUNCER_POOL_SIZE": str(POOL_SIZE),
            "STOREFRONT_RELEASE": "compose-test-1",
            **LOCAL_IMAGES,
        }
        (work / "compose.env").write_text("".join(f"{k}={v}\n" for k, v in compose_env.items()))
        (work / "override.yaml").write_text(OVERRIDE)
        env = {**os.environ, **compose_env}
        stack = ScaleoutStack(env=env, http_port=http_port, https_port=https_port, smtp=smtp,
                              work=work)  # fmt: skip
        stack.compose("down", "-v", "--remove-orphans", check=False)  # an earlier run's leftovers
        try:
            started = time.monotonic()
            stack.compose("build", "web", "certbot", timeout=1800)
            FIGURES["build_seconds"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            stack.compose("up", "-d", timeout=600)
            FIGURES["site_answers_after_seconds"] = round(stack.wait_answering() - started, 1)
            stack.wait_healthy()
            FIGURES["up_to_healthy_seconds"] = round(time.monotonic() - started, 1)
            stack.compose("exec", "-T", "--index=1", "web", "storefront", "seed", "--products",
                          "60", "--orders", "20", "--users", "5", "--seed", "1",
                          "--allow-production")  # fmt: skip
            # The home page the wait above cached (empty, before the seed) is invalidated: a new
            # cache generation on the Sentinel master.
            stack.compose("exec", "-T", "--index=1", "web", "storefront", "cache", "clear")
            yield stack
        finally:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "scaleout-logs.txt").write_text(stack.compose("logs", "--no-color",
                                                                    check=False))  # fmt: skip
            started = time.monotonic()
            stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
            FIGURES["down_seconds"] = round(time.monotonic() - started, 1)
            (OUTPUT / "scaleout-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


# --- a shopper, with plain HTTP requests and a browser's headers -------------------------------


class Shopper:
    """Cookies kept between requests, and the Origin and Referer a browser sends with a form
    POST (Django's CSRF check over HTTPS wants them); redirects are not followed."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.cookies: dict[str, str] = {}
        self.last = "/"

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict, str]:
        origin = self.stack.url
        headers = {"User-Agent": "storefront-scaleout-test", "Accept": "text/html"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if method == "POST":
            headers.update({"Origin": origin, "Referer": origin + self.last,
                            "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            body = urlencode({"csrfmiddlewaretoken": self.cookies.get("csrftoken", ""),
                              **(form or {})})  # fmt: skip
        conn = https(self.stack)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    for morsel in SimpleCookie(value).values():
                        self.cookies[morsel.key] = morsel.value
            if method == "GET":
                self.last = path
            return response.status, {k.lower(): v for k, v in response.getheaders()}, text
        finally:
            conn.close()


def get_json(stack: Stack, path: str) -> object:
    conn = https(stack)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, path
        return json.loads(response.read())
    finally:
        conn.close()


def in_stock_slug(stack: Stack) -> str:
    data = get_json(stack, "/api/products/")
    items = data["results"] if isinstance(data, dict) else data
    return next(p["slug"] for p in items if p.get("in_stock"))


# --- the topology as it comes up -------------------------------------------------------------


def test_scaleout_topology_is_healthy_and_replicating(scaleout: ScaleoutStack) -> None:
    states = container_states(scaleout.ids(""))
    services = Counter(name.split("_")[1] for name in states)
    assert dict(services) == TOPOLOGY, services
    for name, state in states.items():
        assert state == ("exited 0" if "_migrate_" in name else "healthy"), (name, state)
    for service, uid in NEW_SERVICE_USERS.items():
        assert scaleout.compose("exec", "-T", service, "id", "-u").strip() == uid, service
    FIGURES["image_mb"] = {image: round(inspect(image)["Size"] / 1e6)
                           for image in (PGBOUNCER_IMAGE, LOCAL_IMAGES["POSTGRES_IMAGE"],
                                         LOCAL_IMAGES["REDIS_IMAGE"], APP_IMAGE)}  # fmt: skip

    # PostgreSQL: the replica is a hot standby, and the primary streams to it.
    assert scaleout.sql("postgres-replica", "select pg_is_in_recovery()") == "t"
    assert scaleout.sql("postgres", "select pg_is_in_recovery()") == "f"
    streaming = scaleout.sql("postgres", "select usename, state from pg_stat_replication")
    assert streaming.splitlines() == ["replicator|streaming"], streaming
    assert (
        scaleout.sql("postgres-replica", "select status from pg_stat_wal_receiver") == "streaming"
    )

    # Redis: the sentinels agree on the master, which has its replica in sync.
    views = scaleout.sentinel_masters()
    assert set(views.values()) == {"redis:6379"}, views
    replication = scaleout.compose("exec", "-T", "redis-replica", "redis-cli", "info",
                                   "replication")  # fmt: skip
    assert "role:slave" in replication and "master_link_status:up" in replication, replication
    quorum = scaleout.compose("exec", "-T", "sentinel-1", "redis-cli", "-p", "26379", "sentinel",
                              "ckquorum", "storefront")  # fmt: skip
    assert quorum.startswith("OK 3 usable Sentinels"), quorum

    # The app really uses them: web's settings name PgBouncer, the replica and the sentinels.
    settings = scaleout.compose(
        "exec", "-T", "--index=1", "-e", "DJANGO_SETTINGS_MODULE=storefront.settings", "web",
        "python", "-c",
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DATABASES['default']['HOST'], s.DATABASES['default']['PORT'], "
        "sorted(s.DATABASES), s.CELERY_BROKER_URL, s.CACHES['default']['LOCATION']]))",
    )  # fmt: skip
    host, port, aliases, broker, cache = json.loads(settings.strip().splitlines()[-1])
    assert (host, int(port)) == ("pgbouncer", 6432)
    assert aliases == ["default", "replica_0"]
    assert broker.startswith("sentinel://sentinel-1:26379/1;")
    assert cache == "redis://storefront/2"


def test_scaleout_smoke_checkout_reaches_primary_then_replica(scaleout: ScaleoutStack) -> None:
    shopper = Shopper(scaleout)
    # nginx's microcache may answer the page cached before the seed once more (stale while it
    # updates): the products are there within a few seconds.
    deadline = time.monotonic() + 10
    while True:
        status, _, home = shopper.request("GET", "/")
        assert status == 200
        if "product-card" in home or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "product-card" in home
    slug = in_stock_slug(scaleout)
    status, _, product = shopper.request("GET", f"/products/{slug}/")
    assert status == 200
    product_id = re.search(r'action="/cart/add/(\d+)/"', product).group(1)  # type: ignore[union-attr]

    status, _, _ = shopper.request("GET", "/accounts/login/")
    assert status == 200 and "csrftoken" in shopper.cookies
    status, headers, _ = shopper.request(
        "POST", "/accounts/login/",
        {"username": DEMO_CUSTOMER[0], "password": DEMO_CUSTOMER[1], "next": ""},
    )  # fmt: skip
    assert status == 302, "login refused"
    assert "/accounts/login/" not in headers["location"]

    shopper.last = f"/products/{slug}/"
    status, headers, _ = shopper.request("POST", f"/cart/add/{product_id}/", {"quantity": "1"})
    assert status == 302 and headers["location"].endswith("/cart/"), (status, headers)

    status, _, checkout = shopper.request("GET", "/checkout/")
    assert status == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', checkout)
    form = {"shipping_name": "Scale Out", "shipping_address": "1 Replica Road\n12345 Standby"}
    if key:
        form["idempotency_key"] = key.group(1)
    status, headers, _ = shopper.request("POST", "/checkout/", form)
    assert status == 302, status
    match = re.search(r"/orders/([^/]+)/$", headers["location"])
    assert match, headers["location"]
    number = match.group(1)
    status, _, page = shopper.request("GET", headers["location"])
    assert status == 200 and number in page

    # Written on the primary (through PgBouncer), then streamed to the replica.
    query = f"select count(*) from orders_order where number = '{number}'"
    assert scaleout.sql("postgres", query) == "1"
    started = time.monotonic()
    while scaleout.sql("postgres-replica", query) != "1":
        assert time.monotonic() - started < 10, f"order {number} never reached the replica"
        time.sleep(0.1)
    FIGURES["order_on_replica_within_seconds"] = round(time.monotonic() - started, 2)

    # A worker took the confirmation email from the Sentinel broker and sent it.
    deadline = time.monotonic() + 60
    while not [m for m in scaleout.smtp.received() if number in mail_text(m)]:
        assert time.monotonic() < deadline, f"no confirmation for {number}:\n{scaleout.log_tail()}"
        time.sleep(0.2)


# --- a bounded load across the replicas ------------------------------------------------------


def test_scaleout_load_is_served_by_every_replica_within_the_pool(scaleout: ScaleoutStack) -> None:
    slug = in_stock_slug(scaleout)
    paths = ["/", "/products/", f"/products/{slug}/", "/api/products/", "/products/?page=2",
             "/api/products/?page=2", "/healthz", "/accounts/login/"]  # fmt: skip
    local = threading.local()
    results: list[tuple[float, str, str]] = []  # seconds, status, X-Request-ID

    def one(path: str) -> None:
        began = time.monotonic()
        try:
            if getattr(local, "conn", None) is None:
                local.conn = https(scaleout)
            local.conn.request("GET", path)
            response = local.conn.getresponse()
            response.read()
            outcome = str(response.status)
            request_id = response.getheader("x-request-id") or ""
        except (OSError, http.client.HTTPException) as exc:
            outcome, request_id = type(exc).__name__, ""
            local.conn.close()
            local.conn = None
        results.append((time.monotonic() - began, outcome, request_id))

    pool_samples: list[int] = []
    client_samples: list[int] = []
    stop = threading.Event()

    def sample_pools() -> None:
        while not stop.is_set():
            pools = scaleout.pools()
            pool_samples.append(server_connections(pools))
            client_samples.append(client_connections(pools))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample_pools, daemon=True)
    sampler.start()
    started = time.monotonic()
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        for n in range(LOAD_SECONDS * LOAD_RATE):  # open loop: on schedule, whatever answers
            delay = started + n / LOAD_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, paths[n % len(paths)])
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join(30)

    times = sorted(seconds for seconds, _, _ in results)
    outcomes = Counter(outcome for _, outcome, _ in results)
    ok = sum(count for outcome, count in outcomes.items() if outcome.startswith("2"))
    cut = statistics.quantiles(times, n=100)
    # Which web replica served the 2xx that reached one (nginx's microcache answers some pages
    # itself): by its request id in the replicas' logs, as test_compose_stack.py does.
    logs = {container: docker_logs(container) for container in scaleout.ids("web")}
    # A response from nginx's cache repeats the request id of the one that filled it: each id is
    # counted once (the requests that reached a replica).
    served: Counter = Counter()
    for request_id in {rid for _, outcome, rid in results if outcome.startswith("2") and rid}:
        owners = [c[:12] for c, text in logs.items() if request_id in text]
        served[owners[0] if owners else "not in the web logs"] += 1
    summary = {
        "seconds": round(elapsed, 1),
        "scheduled_rate": LOAD_RATE,
        "requests": len(results),
        "ok_2xx": ok,
        "failures": len(results) - ok,
        "outcomes": dict(outcomes),
        "p50_ms": round(cut[49] * 1000, 1),
        "p95_ms": round(cut[94] * 1000, 1),
        "p99_ms": round(cut[98] * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1),
        "served_by": dict(served),
        "pgbouncer_server_connections_max": max(pool_samples, default=0),
        "pgbouncer_client_connections_max": max(client_samples, default=0),
        "pgbouncer_samples": len(pool_samples),
    }
    FIGURES["load"] = summary
    print(json.dumps(summary, indent=2))
    assert len(results) == LOAD_SECONDS * LOAD_RATE, summary
    assert not [o for o in outcomes if o.startswith("5")], summary
    assert ok >= 0.99 * len(results), summary
    replicas = [c[:12] for c in scaleout.ids("web")]
    assert len(replicas) == 3 and all(served[c] > 0 for c in replicas), summary
    assert pool_samples and 0 < max(pool_samples) <= POOL_SIZE, summary
