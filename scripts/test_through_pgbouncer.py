"""Run the app's database tests with every query going through PgBouncer (`make test-pgbouncer`).

Starts a PgBouncer in transaction pooling mode (harness/pgbouncer.py, the configuration of
deploy/pgbouncer/) in front of the PostgreSQL server of DATABASE_URL, points PGBOUNCER_URL at
it, and runs pytest on the app's own tests (storefront/, the ones that start no servers) with
the settings PgBouncer needs (storefront/settings.py: server-side cursors and prepared
statements off; the import's session lock on a direct connection). The test databases are
created and migrated through PgBouncer too.

Django drops its test database at the end with a plain DROP DATABASE, which fails while
PgBouncer keeps its server connections to it; so pytest runs with --reuse-db and this script
drops the test databases itself (WITH (FORCE), directly on the server) once PgBouncer is
stopped. Exit status: pytest's. Extra arguments go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.pgbouncer import running_pgbouncer  # noqa: E402
from harness.processes import PROCESSES, log  # noqa: E402

DEFAULT_TARGETS = ["storefront", "-m", "not stack"]


def _drop_test_databases(database_url: str, name: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
            (f"test_{name}", f"test_{name}_gw%"),
        ).fetchall()
        for (dbname,) in rows:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')  # type: ignore[arg-type]
            log(f"dropped {dbname}")


def main(argv: list[str]) -> int:
    PROCESSES.install()
    database_url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(database_url)
    if parts.scheme not in {"postgres", "postgresql"}:
        print("DATABASE_URL must name a PostgreSQL database (postgres://...)", file=sys.stderr)
        return 2
    name = parts.path.lstrip("/")
    _drop_test_databases(database_url, name)  # a run that was killed may have left them
    pool_size = int(os.environ.get("PGBOUNCER_POOL_SIZE", "20"))
    status = 1
    with running_pgbouncer(
        pg_host=parts.hostname or "127.0.0.1", pg_port=parts.port or 5432, pool_size=pool_size
    ) as bouncer:
        user = parts.username or "postgres"
        env = {**os.environ, "PGBOUNCER_URL": bouncer.url(name, user), "STOREFRONT_ENV": "test"}
        log(f"PgBouncer on port {bouncer.port} (transaction pooling, {pool_size} server conns)")
        args = [sys.executable, "-m", "pytest", "--reuse-db", *(argv or DEFAULT_TARGETS)]
        status = subprocess.run(args, cwd=ROOT, env=env, check=False).returncode
        held = [
            int(p["sv_active"]) + int(p["sv_idle"]) + int(p["sv_used"])
            for p in bouncer.pools()
            if p["database"] != "pgbouncer"
        ]
        peak = max(held, default=0)
        log(f"server connections PgBouncer holds at the end: {peak} (limit {pool_size})")
    _drop_test_databases(database_url, name)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
