"""A Redis that fails over, on free loopback ports: a primary, one replica, three sentinels.

``running_sentinel_set(name)`` starts them (each redis-server with ``--appendonly yes``, the
replica with ``--replicaof``; each sentinel with its own config file, since a sentinel rewrites
it) and waits until every sentinel sees the primary, the replica and its two peers. Then:

* ``.sentinels`` / ``.sentinels_env``: the (host, port) pairs, and "h:p,h:p,h:p" for
  REDIS_SENTINELS;
* ``.master_address()``: the master as the sentinels see it now (None while they disagree or
  none is known), ``.primary`` / ``.replica``: the servers as started;
* ``.kill_master()``: SIGKILL to the current master (no shutdown, no last AOF write), returns
  the killed server and the time of the kill;
* ``.wait_for_failover(old, timeout)``: waits until all sentinels name a master other than
  ``old`` and that master says role:master; returns the new address.

Every wait is bounded; every process is stopped and the temporary directory removed when the
block ends. A missing redis-server or redis-sentinel raises `Unavailable`.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.cache_servers import START_TIMEOUT, RedisServer, _ask, _Server
from harness.processes import HOST, PROCESSES, free_port, require_binary

# Sentinel timing: a master that does not answer for DOWN_AFTER_MS is subjectively down; with a
# quorum of 2 it is objectively down and a failover starts (elected leader, replica promoted).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000
QUORUM = 2


@dataclass
class SentinelServer(_Server):
    def _ready(self) -> bool:
        return _ask(self.port, b"PING\r\n").startswith(b"+PONG")

    def client(self):  # -> redis.Redis, imported lazily
        import redis

        return redis.Redis(host=HOST, port=self.port, socket_timeout=1.0)


@dataclass
class SentinelSet:
    name: str
    primary: RedisServer
    replica: RedisServer
    sentinel_servers: list[SentinelServer] = field(default_factory=list)

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(HOST, s.port) for s in self.sentinel_servers]

    @property
    def sentinels_env(self) -> str:
        """The value of REDIS_SENTINELS."""
        return ",".join(f"{h}:{p}" for h, p in self.sentinels)

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, self.replica]

    def _views(self) -> list[tuple[str, int] | None]:
        """Each sentinel's answer to SENTINEL GET-MASTER-ADDR-BY-NAME (None: no answer)."""
        views: list[tuple[str, int] | None] = []
        for sentinel in self.sentinel_servers:
            if not sentinel.running:
                continue
            try:
                with sentinel.client() as client:
                    reply = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.name)
                views.append((reply[0].decode(), int(reply[1])) if reply else None)
            except Exception:
                views.append(None)
        return views

    def master_address(self) -> tuple[str, int] | None:
        """The master every running sentinel names now; None while they disagree."""
        views = set(self._views())
        if len(views) == 1:
            (view,) = views
            return view
        return None

    def server_at(self, address: tuple[str, int]) -> RedisServer:
        return next(s for s in self.servers if s.port == address[1])

    def kill_master(self) -> tuple[RedisServer, float]:
        """SIGKILL to the current master; (that server, time.monotonic() of the kill)."""
        address = self.master_address()
        if address is None:
            raise RuntimeError("the sentinels do not agree on a master")
        server = self.server_at(address)
        assert server.proc is not None
        killed_at = time.monotonic()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        PROCESSES.forget(server.proc)
        return server, killed_at

    def wait_for_failover(self, old: tuple[str, int], timeout: float) -> tuple[str, int]:
        """The new master's address once every sentinel names one other than `old` and it
        answers role:master; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.master_address()
            if address is not None and address != old and self._is_master(address):
                return address
            time.sleep(0.05)
        raise TimeoutError(
            f"no failover within {timeout:.0f}s (sentinels say {self._views()}):\n"
            + "\n".join(s.log()[-1500:] for s in self.sentinel_servers)
        )

    def _is_master(self, address: tuple[str, int]) -> bool:
        try:
            with self.server_at(address).client() as client:
                return client.info("replication").get("role") == "master"
        except Exception:
            return False

    def wait_until_watching(self, timeout: float = START_TIMEOUT) -> None:
        """Until each sentinel knows the master, its replica and its 2 peer sentinels."""
        deadline = time.monotonic() + timeout
        want_peers = len(self.sentinel_servers) - 1
        while time.monotonic() < deadline:
            if all(self._watching(s, want_peers) for s in self.sentinel_servers):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"the sentinels did not discover replica and peers within {timeout:.0f}s:\n"
            + "\n".join(s.log()[-1500:] for s in self.sentinel_servers)
        )

    def _watching(self, sentinel: SentinelServer, want_peers: int) -> bool:
        try:
            with sentinel.client() as client:
                state = client.sentinel_master(self.name)
            return (
                int(state.get("num-slaves", 0)) >= 1
                and int(state.get("num-other-sentinels", 0)) >= want_peers
            )
        except Exception:
            return False

    def wait_replicated(self, timeout: float = START_TIMEOUT) -> None:
        """Until the replica's link to the primary is up (initial sync done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), self.replica.client() as client:
                if client.info("replication").get("master_link_status") == "up":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"replica never synced:\n{self.replica.log()}")


def _redis_args(binary: str, port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(workdir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--logfile", "",
        *extra,
    ]  # fmt: skip


@contextmanager
def running_sentinel_set(name: str = "storefront") -> Iterator[SentinelSet]:
    """A primary, a replica and three sentinels monitoring them as `name` (quorum 2)."""
    redis_binary = require_binary("redis-server", "redis-server")
    sentinel_binary = require_binary("redis-sentinel", "redis-sentinel")
    root = Path(tempfile.mkdtemp(prefix="sf-sentinel-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)

        def started(server: _Server) -> _Server:
            server.start()
            stack.callback(server.stop)
            return server

        primary_port, replica_port = free_port(), free_port()
        dirs = {n: root / n for n in ("primary", "replica", "s1", "s2", "s3")}
        for d in dirs.values():
            d.mkdir()
        primary = started(
            RedisServer(
                args=_redis_args(redis_binary, primary_port, dirs["primary"]),
                port=primary_port,
                workdir=dirs["primary"],
            )
        )
        replica_args = [*_redis_args(redis_binary, replica_port, dirs["replica"])]
        replica_args += ["--replicaof", HOST, str(primary_port)]
        replica = started(
            RedisServer(args=replica_args, port=replica_port, workdir=dirs["replica"])
        )
        sset = SentinelSet(name=name, primary=primary, replica=replica)  # type: ignore[arg-type]
        sset.wait_replicated()
        for key in ("s1", "s2", "s3"):
            port = free_port()
            config = dirs[key] / "sentinel.conf"
            config.write_text(
                f"port {port}\n"
                f"bind {HOST}\n"
                f"dir {dirs[key]}\n"
                "sentinel resolve-hostnames no\n"
                f"sentinel monitor {name} {HOST} {primary_port} {QUORUM}\n"
                f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
            server = SentinelServer(
                args=[sentinel_binary, str(config)], port=port, workdir=dirs[key]
            )
            sset.sentinel_servers.append(started(server))  # type: ignore[arg-type]
        sset.wait_until_watching()
        yield sset
