"""A throwaway PgBouncer (Debian's `pgbouncer`) in transaction pooling mode, on a free loopback
port, in front of a PostgreSQL server given by host and port.

    with running_pgbouncer(pg_port=5432, pool_size=20) as bouncer:
        url = bouncer.url("storefront_ci")        # what PGBOUNCER_URL takes
        bouncer.pools()                           # SHOW POOLS, from the admin console

Its configuration is the one docs/scaleout.md recommends (deploy/pgbouncer/pgbouncer.ini.template,
rendered here with the ports): every database on the server (`* = ...`), `pool_mode =
transaction`, at most `pool_size` server connections per database and user, and at most
`pool_size` per database in all (max_db_connections), however many clients connect. PgBouncer
refuses to run as root: as root it runs as the `postgres` user (-u).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from harness.processes import HOST, PROCESSES, REPO_ROOT, free_port, require_binary, tail, temp_dir

TEMPLATE = REPO_ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini.template"
RUN_AS = "postgres"
START_TIMEOUT = 10.0


@dataclass
class PgBouncer:
    port: int
    workdir: Path
    pool_size: int
    proc: subprocess.Popen | None = None
    starts: int = field(default=0)

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgres://{user}@{HOST}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def log(self) -> str:
        return tail(self.log_path, 4000)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self) -> None:
        binary = require_binary("pgbouncer", "pgbouncer")
        args = [binary, str(self.workdir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            args[1:1] = ["-u", RUN_AS]
        self.starts += 1
        self.proc = PROCESSES.spawn(
            args, env=dict(os.environ), log_path=self.workdir / "stdout.log", cwd=self.workdir
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{self.log()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            PROCESSES.stop(self.proc, signal.SIGINT, 5)  # SIGINT: safe shutdown

    def admin(self, command: str) -> list[dict[str, object]]:
        """A SHOW command on PgBouncer's admin console (database "pgbouncer")."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(
            self.url("pgbouncer"), autocommit=True, row_factory=dict_row, connect_timeout=5
        ) as conn:
            return list(conn.execute(command, prepare=False).fetchall())  # type: ignore[arg-type]

    def pools(self) -> list[dict[str, object]]:
        return self.admin("SHOW POOLS")


def render_config(
    *, listen_port: int, pg_host: str, pg_port: int, pool_size: int, workdir: Path
) -> str:
    """deploy/pgbouncer/pgbouncer.ini.template with this run's values."""
    return Template(TEMPLATE.read_text()).substitute(
        PGBOUNCER_LISTEN_ADDR=HOST,
        PGBOUNCER_LISTEN_PORT=listen_port,
        POSTGRES_HOST=pg_host,
        POSTGRES_PORT=pg_port,
        PGBOUNCER_POOL_SIZE=pool_size,
        PGBOUNCER_MAX_CLIENT_CONN=2000,
        PGBOUNCER_AUTH_TYPE="trust",
        PGBOUNCER_AUTH_FILE=workdir / "userlist.txt",
        PGBOUNCER_LOGFILE=workdir / "pgbouncer.log",
        PGBOUNCER_PIDFILE=workdir / "pgbouncer.pid",
    )


@contextmanager
def running_pgbouncer(
    *, pg_port: int, pg_host: str = HOST, pool_size: int = 20
) -> Iterator[PgBouncer]:
    """PgBouncer in front of `pg_host`:`pg_port`; stopped and its files removed at the end."""
    require_binary("pgbouncer", "pgbouncer")
    workdir = temp_dir("sf-pgbouncer-")
    port = free_port()
    (workdir / "userlist.txt").write_text('"postgres" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        render_config(
            listen_port=port, pg_host=pg_host, pg_port=pg_port, pool_size=pool_size, workdir=workdir
        )
    )
    if os.geteuid() == 0:
        shutil.chown(workdir, user=RUN_AS, group=RUN_AS)
        for path in workdir.iterdir():
            shutil.chown(path, user=RUN_AS, group=RUN_AS)
    bouncer = PgBouncer(port=port, workdir=workdir, pool_size=pool_size)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(workdir, ignore_errors=True)
