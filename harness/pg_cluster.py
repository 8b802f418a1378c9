"""A throwaway PostgreSQL *server* (cluster) of our own, for tests that stop, restart or starve it.

`harness.postgres.Database` makes databases on the machine's shared server; a test that stops
PostgreSQL or fills its `max_connections` must not do that to the shared one. This starts a
cluster with `initdb` + `pg_ctl` into a temporary directory on a free loopback port, run as the
`postgres` user when we are root (initdb and pg_ctl refuse root). `stop()`, `start()` and
`restart()` keep the port, so the app's DATABASE_URL stays valid across them.

    with running_cluster(max_connections=60) as cluster:
        url = cluster.create_database("shop", owner="storefront")
        cluster.stop(); cluster.start()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.processes import HOST, Unavailable, free_port, log

PG_BIN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian layout), or initdb's on PATH."""
    versions = sorted(
        (p for p in PG_BIN_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not installed (postgresql)")


@dataclass
class PostgresCluster:
    """A cluster in `datadir` listening on 127.0.0.1:`port` (trust authentication)."""

    datadir: Path
    port: int
    bin_dir: Path
    settings: dict[str, str]

    @property
    def log_path(self) -> Path:
        return self.datadir.parent / "postgres.log"

    def _as_owner(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            args = ["runuser", "-u", SUPERUSER, "--", *args]
        return subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
        )

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgres://{user}@{HOST}:{self.port}/{database}"

    def initdb(self) -> None:
        done = self._as_owner(
            [str(self.bin_dir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
             "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def start(self, timeout: float = 30) -> None:
        options = [f"-p {self.port}", f"-c listen_addresses={HOST}", "-c unix_socket_directories="]
        options += [f"-c {k}={v}" for k, v in self.settings.items()]
        done = self._as_owner(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.log_path),
             "-o", " ".join(options), "-w", "-t", str(int(timeout)), "start"],
            timeout=timeout + 10,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{self.log()}")

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """`pg_ctl stop -m mode` (fast: disconnect clients, immediate: crash-like)."""
        done = self._as_owner(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w",
             "-t", str(int(timeout)), "stop"],
            timeout=timeout + 10,
        )  # fmt: skip
        if done.returncode != 0 and "is the server running" not in done.stderr:
            raise RuntimeError(f"pg_ctl stop failed:\n{done.stdout}\n{done.stderr}")

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        done = self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "status"])
        return done.returncode == 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def execute(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)  # type: ignore[arg-type] - our own fixed statements

    def create_database(self, name: str, *, owner: str | None = None) -> str:
        """Create database `name` (and role `owner`, a plain login role: no superuser, so the
        reserved connections stay reserved); returns its URL as `owner`."""
        if owner:
            self.execute(f'CREATE ROLE "{owner}" LOGIN')
            self.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
            return self.url(name, owner)
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _new_cluster(prefix: str, bin_dir: Path, settings: dict[str, str | int]) -> PostgresCluster:
    """A cluster object in a fresh temporary directory (the postgres user's when we are root),
    on a free port; nothing started yet."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(base, user=SUPERUSER, group=SUPERUSER)
    return PostgresCluster(
        datadir=base / "data",
        port=free_port(),
        bin_dir=bin_dir,
        settings={k: str(v) for k, v in {"fsync": "off", **settings}.items()},
    )


def _remove(cluster: PostgresCluster) -> None:
    """Stop the cluster at once (it is thrown away) and delete its directory."""
    base = cluster.datadir.parent
    try:
        cluster.stop(mode="immediate")
    except Exception as exc:
        log(f"could not stop the PostgreSQL cluster in {base}: {exc}")
    deadline = time.monotonic() + 5
    while cluster.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(base, ignore_errors=True)


@contextmanager
def running_cluster(**settings: str | int) -> Iterator[PostgresCluster]:
    """A fresh cluster on a free port with `settings` (postgresql.conf names, e.g.
    max_connections=60), stopped and deleted when the block ends."""
    bin_dir = pg_bin_dir()
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise Unavailable("running PostgreSQL as root needs runuser (util-linux)")
    cluster = _new_cluster("sf-pgcluster-", bin_dir, settings)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        _remove(cluster)


@contextmanager
def running_replica(primary: PostgresCluster, **settings: str | int) -> Iterator[PostgresCluster]:
    """A streaming replica of `primary`: `pg_basebackup -R` (which writes standby.signal and
    primary_conninfo) into a fresh directory, started on a free port as a hot standby. Stopped
    and deleted when the block ends. `primary` needs wal_level replica (the default) and lets
    replication connections in (initdb -A trust does, from 127.0.0.1)."""
    replica = _new_cluster("sf-pgreplica-", primary.bin_dir, {"hot_standby": "on", **settings})
    try:
        done = replica._as_owner(
            [str(primary.bin_dir / "pg_basebackup"), "-h", HOST, "-p", str(primary.port),
             "-U", SUPERUSER, "-D", str(replica.datadir), "-R", "-X", "stream",
             "-c", "fast", "--no-sync"],
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed:\n{done.stdout}\n{done.stderr}")
        replica.start()
        yield replica
    finally:
        _remove(replica)


def replay_paused(replica: PostgresCluster, paused: bool) -> None:
    """Pause (or resume) WAL replay on a replica: what it serves then lags behind the primary."""
    replica.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
