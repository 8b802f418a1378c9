"""A circuit breaker for the cache's Redis connections: a down or hung Redis costs one timeout
per cool-down period per process, not one per cache call.

django-redis already turns Redis errors into cache misses (IGNORE_EXCEPTIONS), but each call
still waits for its own failure: with Redis hung (accepting connections, never answering), a
page making 20 cache calls waits 20 × REDIS_SOCKET_TIMEOUT. After a connection error or a
timeout, this breaker fails every new connection at once for REDIS_BREAKER_COOLDOWN seconds;
then one connection is tried again (half-open) and its outcome decides.

Why our own, checked against what is maintained (redis 8.1, django-redis 7, pybreaker 1.4):

- redis-py's `Retry`/backoff retries a failed command: against a hung Redis that multiplies
  the wait, and nothing is remembered for the next call. `health_check_interval` PINGs an idle
  connection before use, and that PING waits out the same timeout. Neither fails fast.
- redis-py's own breakers belong to `redis.multidb.MultiDBClient`, which fails over between
  several databases; django-redis does not build that client, and with one database there is
  nothing to fail over to.
- pybreaker's `CircuitBreaker.call` holds one lock for the whole guarded call, so with threaded
  workers (GUNICORN_WORKER_CLASS=gthread) every request queues behind a hanging connect instead
  of failing at once, and it raises its own `CircuitBreakerError`, which django-redis does not
  treat as a connection error (a 500 instead of a cache miss). It would also need the same hook
  below: it saves the ~50-line state machine and costs a dependency and those two defects.

The hook is redis-py's `connection_class` pool argument (settings.py: CONNECTION_POOL_KWARGS).
The breaker decides in `connect_check_health`, the one method every path that opens a socket
goes through (`connect()` from the pool, and `send_packed_command` on a reconnect after an
error, which bypasses `connect()`), and learns of hung reads in `read_response`. redis is pinned
in pyproject.toml; tests/test_redis_breaker.py fails if an upgrade moves either method.

With Redis Sentinel (REDIS_SENTINELS), `BreakerSentinelConnection` does the same for the
connections of redis-py's SentinelConnectionPool: each connect first asks the sentinels for the
master, sets host and port, then goes through `connect_check_health`, so the breaker is the
one of the master's current address. A failover moves new connections to another address, with
a closed breaker of its own: the breaker of the dead master does not hold them back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from redis.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import SentinelManagedConnection

logger = logging.getLogger("storefront.cache")


class CircuitBreaker:
    def __init__(self, cooldown: float | None = None) -> None:
        self._cooldown = cooldown
        self._open_until = 0.0
        self._trial = False
        self._lock = threading.Lock()

    def before_connect(self) -> None:
        """Raise at once while open; after the cool-down let one caller through to try."""
        with self._lock:
            now = time.monotonic()
            if now < self._open_until:
                raise RedisConnectionError("cache circuit open: Redis failed recently")
            if self._open_until and self._trial:
                raise RedisConnectionError("cache circuit half-open: a trial connection is out")
            if self._open_until:
                self._trial = True

    @property
    def cooldown(self) -> float:
        if self._cooldown is not None:
            return self._cooldown
        from django.conf import settings

        return float(getattr(settings, "REDIS_BREAKER_COOLDOWN", 5.0))

    def reset(self) -> None:
        with self._lock:
            self._open_until, self._trial = 0.0, False

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            was_closed = not self._open_until
            self._open_until = time.monotonic() + self.cooldown
            self._trial = False
        if was_closed:
            logger.warning(
                "cache circuit opened for %.0fs after %s: %s",
                self.cooldown,
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        with self._lock:
            reopened = bool(self._open_until)
            self._open_until = 0.0
            self._trial = False
        if reopened:
            logger.warning("cache circuit closed: Redis answers again")

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until


# One breaker per Redis server and process: every cache alias on the same server shares its
# fate. The cool-down is settings.REDIS_BREAKER_COOLDOWN.
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(address: str) -> CircuitBreaker:
    with _breakers_lock:
        if address not in _breakers:
            _breakers[address] = CircuitBreaker()
        return _breakers[address]


def reset_all() -> None:
    """Close every breaker (tests, after switching servers)."""
    with _breakers_lock:
        for breaker in _breakers.values():
            breaker.reset()


class _BreakerMixin:
    def _breaker(self) -> CircuitBreaker:
        path = getattr(self, "path", None)
        address = path if path else f"{getattr(self, 'host', '')}:{getattr(self, 'port', '')}"
        return breaker_for(address)

    # redis-py opens connections through connect_check_health (from connect() and from
    # send_packed_command), so that is where the breaker decides.
    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_sock", None) is not None:
            return  # already connected: nothing to decide
        breaker = self._breaker()
        breaker.before_connect()
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            breaker.failed(exc)
            raise
        breaker.succeeded()

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._breaker().failed(exc)
            raise


class BreakerConnection(_BreakerMixin, Connection):
    """TCP connection (redis://, rediss:// is not used for the cache here)."""


class BreakerUnixConnection(_BreakerMixin, UnixDomainSocketConnection):
    """Unix-socket connection (unix:// URLs)."""


class BreakerSentinelConnection(_BreakerMixin, SentinelManagedConnection):
    """A connection to the master the sentinels name (REDIS_SENTINELS): redis-py's
    SentinelManagedConnection discovers the address, the breaker guards that address."""
