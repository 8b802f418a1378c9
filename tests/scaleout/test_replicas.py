"""Read replicas, live: a PostgreSQL primary and a real streaming replica (pg_basebackup, hot
standby, run as the postgres user on another port), Storefront served by `make run`'s own
script (nginx on HTTP, two gunicorns, Redis, a Celery worker) with DATABASE_REPLICA_URLS.

How the test tells where a page was read from: WAL replay on the replica is paused
(pg_wal_replay_pause), then a product's name is changed on the primary. A page rendered from
the replica shows the old name, one from the primary the new name. The app's caches are off
(TTLs 0, nginx microcache off) so every page is rendered from the database it was routed to.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from harness.pg_cluster import PostgresCluster, replay_paused, running_cluster, running_replica
from harness.served import ServedStack, served_stack

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("replicas")]

PIN_SECONDS = 3
SEED = {"products": 40, "orders": 20, "users": 5, "seed": 3}
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9",
}


@dataclass
class ReplicaShop:
    primary: PostgresCluster
    replica: PostgresCluster
    stack: ServedStack
    database: str

    def primary_sql(self, statement: str) -> None:
        self.primary.execute(statement, self.database)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaShop]:
    with running_cluster(max_connections=100) as primary:
        primary.create_database("storefront")
        with (
            running_replica(primary) as replica,
            served_stack(
                primary.url("storefront"),
                tmp_path_factory.mktemp("replica-var"),
                redis_url=os.environ.get("REDIS_URL", ""),
                tag=f"repl{os.getpid()}",
                seed_sizes=SEED,
                variables={
                    "DATABASE_REPLICA_URLS": replica.url("storefront"),
                    "DATABASE_REPLICA_PIN_SECONDS": str(PIN_SECONDS),
                    "DATABASE_REPLICA_RETRY_SECONDS": "2",
                    "STOREFRONT_CACHE_TTL_PAGES": "0",
                    "STOREFRONT_CACHE_TTL_QUERIES": "0",
                    "STOREFRONT_CACHE_TTL_DASHBOARD": "0",
                    "NGINX_MICROCACHE": "off",
                },
            ) as stack,
        ):
            yield ReplicaShop(primary, replica, stack, "storefront")


def _product(shop: ReplicaShop) -> tuple[int, str, str]:
    import psycopg

    with psycopg.connect(shop.primary.url(shop.database), autocommit=True) as conn:
        row = conn.execute(
            "SELECT id, slug, name FROM catalog_product WHERE is_active AND stock > 5 "
            "ORDER BY id LIMIT 1"
        ).fetchone()
    assert row, "the seeded shop has a product in stock"
    return row[0], row[1], row[2]


def _rename_on_primary(shop: ReplicaShop, product_id: int) -> str:
    name = f"Renamed {uuid.uuid4().hex[:8]}"
    shop.primary_sql(f"UPDATE catalog_product SET name = '{name}' WHERE id = {int(product_id)}")
    return name


def _wait_replayed(shop: ReplicaShop, name: str, timeout: float = 10) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(shop.replica.url(shop.database), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM catalog_product WHERE name = %s", (name,))
            if found.fetchone():
                return
        time.sleep(0.1)
    raise AssertionError(f"the replica did not replay {name!r} within {timeout}s")


def _csrf(text: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text) or re.search(
        r'"(?:token|csrfToken|csrf_token)"\s*:\s*"([^"]+)"', text
    )
    assert found, text[:500]
    return found.group(1)


def _post(
    client: requests.Session, base: str, path: str, form: dict[str, str]
) -> requests.Response:
    """A form POST as a browser sends it (Origin and Referer of the page it came from)."""
    return client.post(
        f"{base}{path}",
        data=form,
        headers={**BROWSER_HEADERS, "Origin": base, "Referer": f"{base}{path}"},
        timeout=15,
        allow_redirects=False,
    )


def _login(client: requests.Session, base: str, username: str, password: str) -> None:
    page = client.get(f"{base}/accounts/login/", headers=BROWSER_HEADERS, timeout=10)
    form = {"csrfmiddlewaretoken": _csrf(page.text), "username": username, "password": password}
    done = _post(client, base, "/accounts/login/", form)
    assert done.status_code == 302, done.text[:500]


def _add_to_cart(client: requests.Session, base: str, product_id: int) -> None:
    token = _csrf(client.get(f"{base}/cart/token/", headers=BROWSER_HEADERS, timeout=10).text)
    added = _post(
        client, base, f"/cart/add/{product_id}/", {"csrfmiddlewaretoken": token, "quantity": "1"}
    )
    assert added.status_code in (302, 303), added.text[:500]


def _checkout(client: requests.Session, base: str) -> str:
    """Places the cart's order; returns its number (from the redirect to its page)."""
    page = client.get(f"{base}/checkout/", headers=BROWSER_HEADERS, timeout=10)
    assert page.status_code == 200, page.text[:500]
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key, page.text[:500]
    form = {
        "csrfmiddlewaretoken": _csrf(page.text),
        "idempotency_key": key.group(1),
        "shipping_name": "Replica Tester",
        "shipping_address": "1 Loopback Road\n127 Localhost",
    }
    placed = _post(client, base, "/checkout/", form)
    assert placed.status_code == 302, placed.text[:500]
    number = re.search(r"/orders/([^/]+)/", placed.headers["Location"])
    assert number, placed.headers["Location"]
    return number.group(1)


def _metrics(shop: ReplicaShop) -> str:
    """/metrics from gunicorn's own socket (nginx never serves it), as Prometheus scrapes it."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(shop.stack.var_dir / "run" / "gunicorn-1.sock"))

    conn = UnixConnection("localhost")
    try:
        conn.request("GET", "/metrics", headers={"Host": "localhost"})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def _metric(text: str, name: str, replica: str = "replica_0") -> float | None:
    found = re.search(rf'^{name}\{{replica="{replica}"\}} ([0-9.eE+-]+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_reads_follow_the_replica_and_writers_read_their_writes(shop: ReplicaShop) -> None:
    base = shop.stack.http_url
    product_id, slug, old_name = _product(shop)
    anonymous = requests.Session()
    page = anonymous.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
    assert page.status_code == 200 and old_name in page.text

    replay_paused(shop.replica, True)
    try:
        new_name = _rename_on_primary(shop, product_id)
        # Catalog reads of a visitor who has not written: the replica (the old name).
        for _ in range(4):
            page = anonymous.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
            assert page.status_code == 200
            assert old_name in page.text and new_name not in page.text

        # The lag is exported while replay is paused (a write waits to be replayed).
        time.sleep(1.2)
        metrics = _metrics(shop)
        assert _metric(metrics, "storefront_db_replica_up") == 1.0
        lag = _metric(metrics, "storefront_db_replica_lag_seconds")
        assert lag is not None and lag >= 1.0, metrics[-2000:]

        # A visitor who writes (adds to the cart: a POST) reads from the primary at once...
        writer = requests.Session()
        page = writer.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
        assert old_name in page.text
        _add_to_cart(writer, base, product_id)
        assert "sf_primary" in writer.cookies
        page = writer.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
        assert new_name in page.text, "a visitor who just wrote must read from the primary"
        # ...while everyone else still reads the lagging replica.
        page = anonymous.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
        assert old_name in page.text

        # Once the pin expires, the writer is back on the replica.
        time.sleep(PIN_SECONDS + 1)
        page = writer.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
        assert old_name in page.text, "after the pin, reads go to the replica again"
    finally:
        replay_paused(shop.replica, False)
    _wait_replayed(shop, new_name)
    page = anonymous.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
    assert new_name in page.text
    metrics = _metrics(shop)
    assert _metric(metrics, "storefront_db_replica_lag_seconds") == 0.0


def test_a_customer_sees_the_order_just_placed_on_the_replica_routed_dashboard(
    shop: ReplicaShop,
) -> None:
    """The customer dashboard reads from a replica; its own order must still be on it right
    after checkout, however far the replica lags (here: replay paused)."""
    from storefront.seeding.demo import DEMO_CUSTOMER

    base = shop.stack.http_url
    product_id, _, _ = _product(shop)
    client = requests.Session()
    _login(client, base, *DEMO_CUSTOMER)
    replay_paused(shop.replica, True)
    try:
        _add_to_cart(client, base, product_id)
        number = _checkout(client, base)
        dashboard = client.get(f"{base}/dashboard/", headers=BROWSER_HEADERS, timeout=10)
        assert dashboard.status_code == 200
        assert number in dashboard.text, "the order just placed is on the customer's dashboard"
        history = client.get(f"{base}/orders/", headers=BROWSER_HEADERS, timeout=10)
        assert number in history.text
        # The dashboard did come from the replica: once the pin expires, the lagging replica
        # does not know the order yet (the order history, not replica-routed, still does).
        time.sleep(PIN_SECONDS + 1)
        dashboard = client.get(f"{base}/dashboard/", headers=BROWSER_HEADERS, timeout=10)
        assert dashboard.status_code == 200 and number not in dashboard.text
        history = client.get(f"{base}/orders/", headers=BROWSER_HEADERS, timeout=10)
        assert number in history.text
    finally:
        replay_paused(shop.replica, False)


def test_replica_down_reads_fall_back_to_the_primary(shop: ReplicaShop) -> None:
    base = shop.stack.http_url
    _, slug, _ = _product(shop)
    anonymous = requests.Session()
    assert anonymous.get(f"{base}/products/{slug}/", timeout=10).status_code == 200
    shop.replica.stop(mode="immediate")
    try:
        statuses = [
            anonymous.get(f"{base}/products/{slug}/", headers=BROWSER_HEADERS, timeout=10)
            for _ in range(20)
        ]
        assert [r.status_code for r in statuses] == [200] * 20
        listing = anonymous.get(f"{base}/products/", headers=BROWSER_HEADERS, timeout=10)
        assert listing.status_code == 200
        metrics = _metrics(shop)
        assert _metric(metrics, "storefront_db_replica_up") == 0.0
        assert _metric(metrics, "storefront_db_replica_lag_seconds") is None
    finally:
        shop.replica.start()
    # Back: after DATABASE_REPLICA_RETRY_SECONDS the replica is used again.
    time.sleep(2.5)
    metrics = _metrics(shop)
    assert _metric(metrics, "storefront_db_replica_up") == 1.0
