"""Throwaway cache servers on free loopback ports, for tests that stop, flush or starve them.

Never point such a test at the shared Redis (REDIS_URL): FLUSHALL or a restart there would hit
every other test run. These helpers start a private server instead:

* ``running_redis(*extra_args)``: an own ``redis-server`` without persistence (``--save ""
  --appendonly no``, so a restart comes back empty), with ``stop()``, ``start()`` (same port),
  ``flushall()``, ``keys()`` and ``info()``; `extra_args` are more redis-server options, e.g.
  ``"--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"``.
* ``running_memcached()``: an own ``memcached``; ``.location`` is ``"127.0.0.1:port"``.
* ``black_hole_server()``: a TCP port that accepts connections and never answers, the worst
  case for a client (a hung server, not a refused connection).

Every wait is bounded; the servers are stopped (and their files removed) when the block ends.
A missing binary raises `Unavailable` (a test is then skipped, or failed under
STOREFRONT_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import HOST, PROCESSES, free_port, require_binary, tail

START_TIMEOUT = 10.0  # seconds for a server to answer after it was spawned
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


def _ask(port: int, command: bytes, *, timeout: float = 0.5) -> bytes:
    """Send one plain-text command and return the first reply bytes ("" on any error)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(command)
            return sock.recv(1024)
    except OSError:
        return b""


@dataclass
class _Server:
    """A server subprocess on a fixed port, ready once `_ready()` says so."""

    args: list[str]
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def log(self) -> str:
        return tail(self.log_path, 4000)

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the server (again, on the same port) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"{self.args[0]} on port {self.port} is already running")
        self.starts += 1
        self.proc = PROCESSES.spawn(
            self.args, env=dict(os.environ), log_path=self.log_path, cwd=self.workdir
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.args[0]} exited with {self.proc.returncode}:\n{self.log()}"
                )
            if self._ready():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"{self.args[0]} did not answer on port {self.port} within {START_TIMEOUT}s:\n"
            f"{self.log()}"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after STOP_TIMEOUT); the port then refuses."""
        if self.proc is not None:
            PROCESSES.stop(self.proc, signal.SIGTERM, STOP_TIMEOUT)


@dataclass
class RedisServer(_Server):
    db: int = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/{self.db}"

    def _ready(self) -> bool:
        return _ask(self.port, b"PING\r\n").startswith(b"+PONG")

    def client(self):  # -> redis.Redis, imported lazily
        import redis

        return redis.Redis(host=HOST, port=self.port, db=self.db, socket_timeout=2.0)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def keys(self, pattern: str = "*") -> list[str]:
        with self.client() as client:
            return sorted(k.decode() for k in client.keys(pattern))

    def info(self, section: str) -> dict:
        """INFO `section` (e.g. "stats": evicted_keys; "memory": used_memory, maxmemory)."""
        with self.client() as client:
            return client.info(section)


@dataclass
class MemcachedServer(_Server):
    @property
    def location(self) -> str:
        """What Django's PyMemcacheCache LOCATION (and MEMCACHED_URL, without scheme) takes."""
        return f"{HOST}:{self.port}"

    def _ready(self) -> bool:
        return _ask(self.port, b"version\r\n").startswith(b"VERSION")

    @contextmanager
    def client(self):  # -> Iterator[pymemcache.client.base.Client], imported lazily
        from pymemcache.client.base import Client

        client = Client((HOST, self.port), connect_timeout=2.0, timeout=2.0)
        try:
            yield client
        finally:
            client.close()


@contextmanager
def _running(server: _Server) -> Iterator[_Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextmanager
def running_redis(*extra_args: str) -> Iterator[RedisServer]:
    """An own redis-server on a free loopback port, without persistence, plus `extra_args`."""
    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sf-redis-"))
    args = [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--logfile", "",
        *extra_args,
    ]  # fmt: skip
    with _running(RedisServer(args=args, port=port, workdir=workdir)) as server:
        yield server  # type: ignore[misc]


@contextmanager
def running_memcached() -> Iterator[MemcachedServer]:
    """An own memcached on a free loopback port (TCP only, 64 MB)."""
    binary = require_binary("memcached", "memcached")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sf-memcached-"))
    args = [binary, "-l", HOST, "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        args += ["-u", "root"]  # memcached refuses to run as root without it
    with _running(MemcachedServer(args=args, port=port, workdir=workdir)) as server:
        yield server  # type: ignore[misc]


@dataclass
class BlackHole:
    """A listening TCP port that accepts every connection and never sends a byte."""

    port: int
    accepted: int = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def location(self) -> str:
        return f"{HOST}:{self.port}"


@contextmanager
def black_hole_server() -> Iterator[BlackHole]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(64)
    listener.settimeout(0.1)
    hole = BlackHole(port=listener.getsockname()[1])
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_forever() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # kept open and unread: the client waits for a reply in vain
            hole.accepted += 1

    thread = threading.Thread(target=accept_forever, name="black-hole", daemon=True)
    thread.start()
    try:
        yield hole
    finally:
        done.set()
        thread.join(timeout=STOP_TIMEOUT)
        listener.close()
        for conn in held:
            conn.close()
