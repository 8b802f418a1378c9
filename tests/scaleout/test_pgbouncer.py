"""PgBouncer, live: 500 concurrent clients served by a PostgreSQL that accepts only 25
connections, through PgBouncer's transaction pooling (at most 20 server connections).

The clients are what 500 gunicorn threads and Celery processes look like to PostgreSQL: each
connects, and once all 500 are connected at the same time, each runs transactions shaped like
the shop's (a read of the catalog, an order row and its line written in one transaction,
read back). A sampler on a direct connection counts the server's client backends meanwhile.
The app's own tests through PgBouncer: `make test-pgbouncer` (scripts/test_through_pgbouncer.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from harness.pg_cluster import running_cluster
from harness.pgbouncer import running_pgbouncer

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("pgbouncer")]

CLIENTS = 500
TRANSACTIONS = 4
POOL_SIZE = 20
SERVER_MAX_CONNECTIONS = 25  # fewer than 500 by far: without PgBouncer most clients are refused

SCHEMA = """
CREATE TABLE product (id serial PRIMARY KEY, name text NOT NULL, stock int NOT NULL);
INSERT INTO product (name, stock) SELECT 'Product ' || n, 1000000 FROM generate_series(1, 200) n;
CREATE TABLE purchase (id bigserial PRIMARY KEY, client int NOT NULL, n int NOT NULL,
                       created timestamptz NOT NULL DEFAULT now());
CREATE TABLE purchase_line (purchase_id bigint REFERENCES purchase, product_id int NOT NULL);
"""


async def _client(url: str, number: int, all_connected: asyncio.Event, counter: list[int]) -> int:
    import psycopg

    # prepare_threshold=None: what settings.py sets for a connection through PgBouncer 1.18;
    # autocommit, as Django's connections are (a transaction only inside `transaction()`).
    conn = await psycopg.AsyncConnection.connect(
        url, prepare_threshold=None, autocommit=True, connect_timeout=30
    )
    try:
        counter[0] += 1
        if counter[0] == CLIENTS:
            all_connected.set()
        await all_connected.wait()
        done = 0
        for n in range(TRANSACTIONS):
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT id, stock FROM product WHERE id = %s", (1 + (number + n) % 200,)
                )
                product_id, _ = await cur.fetchone()  # type: ignore[misc]
                cur = await conn.execute(
                    "INSERT INTO purchase (client, n) VALUES (%s, %s) RETURNING id", (number, n)
                )
                (purchase_id,) = await cur.fetchone()  # type: ignore[misc]
                await conn.execute(
                    "INSERT INTO purchase_line (purchase_id, product_id) VALUES (%s, %s)",
                    (purchase_id, product_id),
                )
                await conn.execute("SELECT pg_sleep(0.005)")  # a request's other work
            cur = await conn.execute("SELECT count(*) FROM purchase WHERE client = %s", (number,))
            (mine,) = await cur.fetchone()  # type: ignore[misc]
            assert mine == n + 1, "a client reads its own committed writes"
            done += 1
        return done
    finally:
        await conn.close()


async def _all_clients(url: str) -> list[int | BaseException]:
    all_connected = asyncio.Event()
    counter = [0]
    tasks = [_client(url, i, all_connected, counter) for i in range(CLIENTS)]
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=120)


def test_500_clients_share_20_server_connections() -> None:
    import psycopg

    with running_cluster(max_connections=SERVER_MAX_CONNECTIONS) as cluster:
        cluster.create_database("shop")
        with psycopg.connect(cluster.url("shop"), autocommit=True) as conn:
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        # Without PgBouncer: the server refuses clients past max_connections (less the 3
        # reserved for superusers; these clients are superusers, so 25 get in).
        direct, refused = [], 0
        try:
            for _ in range(60):
                try:
                    direct.append(psycopg.connect(cluster.url("shop"), connect_timeout=5))
                except psycopg.OperationalError as exc:
                    assert "too many clients" in str(exc)
                    refused += 1
        finally:
            for conn in direct:
                conn.close()
        assert refused == 60 - SERVER_MAX_CONNECTIONS

        with running_pgbouncer(pg_port=cluster.port, pool_size=POOL_SIZE) as bouncer:
            stop = threading.Event()
            samples: list[int] = []
            pools_seen: list[dict] = []

            def sample() -> None:
                with psycopg.connect(cluster.url("postgres"), autocommit=True) as direct:
                    while not stop.is_set():
                        (count,) = direct.execute(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = 'shop' AND backend_type = 'client backend'"
                        ).fetchone()  # type: ignore[misc]
                        samples.append(count)
                        time.sleep(0.02)

            def watch_pools() -> None:
                while not stop.is_set():
                    pools_seen.extend(p for p in bouncer.pools() if p["database"] == "shop")
                    time.sleep(0.1)

            threads = [threading.Thread(target=f, daemon=True) for f in (sample, watch_pools)]
            for t in threads:
                t.start()
            started = time.monotonic()
            try:
                results = asyncio.run(_all_clients(bouncer.url("shop")))
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=5)
            seconds = time.monotonic() - started

        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)} clients failed, e.g. {errors[0]!r}"
        assert results == [TRANSACTIONS] * CLIENTS
        with psycopg.connect(cluster.url("shop"), autocommit=True) as conn:
            purchases = conn.execute("SELECT count(*) FROM purchase").fetchone()[0]  # type: ignore[index]
            lines = conn.execute("SELECT count(*) FROM purchase_line").fetchone()[0]  # type: ignore[index]
        assert purchases == lines == CLIENTS * TRANSACTIONS  # nothing lost, nothing twice

        # All 500 were connected at once (PgBouncer saw them), served by at most 20 backends.
        assert max(int(p["cl_active"]) + int(p["cl_waiting"]) for p in pools_seen) == CLIENTS
        assert samples and max(samples) <= POOL_SIZE, samples
        assert max(samples) >= POOL_SIZE // 2, "the pool was used, not one connection"
        waited = max(int(p["maxwait"]) * 1000 + int(p["maxwait_us"]) // 1000 for p in pools_seen)
        print(  # figures for docs/scaleout.md (pytest -s)
            f"\n{CLIENTS} clients x {TRANSACTIONS} transactions in {seconds:.1f} s; "
            f"server connections: max {max(samples)} (limit {POOL_SIZE}); "
            f"longest wait for a server connection {waited} ms"
        )


def test_make_run_with_pgbouncer_serves_the_shop_through_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`make run` with PGBOUNCER=1 (scripts/run.sh, nginx, two gunicorns, a worker): a customer
    logs in and checks out through nginx, and the app's queries went through PgBouncer."""
    import os
    import re

    import psycopg
    import requests

    from harness.pgbouncer import PgBouncer
    from harness.postgres import Database, is_postgres
    from harness.processes import free_port
    from harness.served import served_stack
    from storefront.seeding.demo import DEMO_CUSTOMER

    outer = os.environ.get("DATABASE_URL", "")
    if not is_postgres(outer):
        pytest.skip("make run PGBOUNCER=1 needs a PostgreSQL DATABASE_URL")
    database = Database.beside(outer, f"storefront_pgb_{os.getpid()}").create()
    port = free_port()
    var_dir = tmp_path_factory.mktemp("pgb-var")
    try:
        with served_stack(
            database.url,
            var_dir,
            redis_url=os.environ.get("REDIS_URL", ""),
            tag=f"pgb{os.getpid()}",
            seed_sizes={"products": 30, "orders": 10, "users": 5, "seed": 5},
            variables={"PGBOUNCER": "1", "PGBOUNCER_PORT": str(port), "PGBOUNCER_POOL_SIZE": "5"},
        ) as stack:
            assert "PgBouncer         127.0.0.1:" in stack.run.text
            base = stack.http_url
            headers = {"User-Agent": "Mozilla/5.0 Chrome/156.0", "Accept": "text/html"}
            client = requests.Session()
            page = client.get(f"{base}/accounts/login/", headers=headers, timeout=10)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token
            post_headers = {**headers, "Origin": base, "Referer": f"{base}/accounts/login/"}
            form = {"csrfmiddlewaretoken": token.group(1), "username": DEMO_CUSTOMER[0],
                    "password": DEMO_CUSTOMER[1]}  # fmt: skip
            login = client.post(f"{base}/accounts/login/", data=form, headers=post_headers,
                                timeout=10, allow_redirects=False)  # fmt: skip
            assert login.status_code == 302, login.text[:300]
            assert client.get(f"{base}/dashboard/", headers=headers, timeout=10).status_code == 200
            assert client.get(f"{base}/products/", headers=headers, timeout=10).status_code == 200

            found = re.search(r"config and log: (\S+)", stack.run.text)
            assert found, stack.run.text[-2000:]
            bouncer = PgBouncer(port=port, workdir=Path(found.group(1)), pool_size=5)
            pools = [p for p in bouncer.pools() if p["database"] == database.name]
            assert pools, bouncer.pools()
            held = sum(int(p["sv_active"]) + int(p["sv_idle"]) + int(p["sv_used"]) for p in pools)
            assert 1 <= held <= 5
            stats = {s["database"]: s for s in bouncer.admin("SHOW STATS")}
            assert int(stats[database.name]["total_xact_count"]) > 0
            # gunicorn's and the worker's connections are PgBouncer's; the server sees at most
            # the pool's.
            admin = Database.beside(outer, "postgres").url
            with psycopg.connect(admin, autocommit=True) as conn:
                (backends,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend'",
                    (database.name,),
                ).fetchone()  # type: ignore[misc]
            assert backends <= 5
    finally:
        database.drop()
