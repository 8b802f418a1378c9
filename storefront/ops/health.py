"""Readiness checks of the services Storefront depends on: each one bounded by a short timeout.

Liveness (`/healthz`) touches none of them: a process that answers is alive, and restarting it
because the database is down would not help. Readiness (`/readyz`) asks each dependency.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from storefront import redis_sentinel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    milliseconds: float


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_cache() -> str:
    # A round trip through the cache: django-redis may be configured to swallow errors, so a
    # missing value is what reveals an outage.
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return backend + _sentinel_master_of_cache()


def _sentinel_master_of_cache() -> str:
    """ " (sentinel master host:port)" when the cache goes through Redis Sentinel and has found
    its master (the round trip above did), "" otherwise; asks nothing over the network."""
    if not getattr(settings, "REDIS_SENTINELS", None):
        return ""
    try:
        pool = cache.client.get_client().connection_pool  # type: ignore[attr-defined]
        address = getattr(pool, "master_address", None)
    except Exception:  # not django-redis, or no pool yet: the detail stays plain
        return ""
    return f" (sentinel master {address[0]}:{address[1]})" if address else ""


def check_broker() -> str:
    url = settings.STOREFRONT_BROKER_URL
    if not url:
        return "not configured (tasks run in-process)"
    if not url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        return "not checked (non-Redis broker)"
    # With Sentinel: the master the sentinels name now (none during a failover: not ready).
    client, where = redis_sentinel.redis_client(url, timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return where


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # any failure means "not ready", with its reason
            detail, ok = f"{type(exc).__name__}: {exc}", False
            # The reason goes to the log in full; /readyz shows it to local clients only.
            logger.warning("readiness check %s failed: %s", name, detail)
        results.append(
            CheckResult(
                name=name,
                ok=ok,
                detail=detail,
                milliseconds=round((time.perf_counter() - started) * 1000, 1),
            )
        )
    return results
