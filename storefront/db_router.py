"""Read replicas: catalog and dashboard reads go to a streaming replica, everything else to the
primary, and nobody misses their own write.

Enabled by DATABASE_REPLICA_URLS (settings.py makes the aliases replica_0, replica_1, ...).
The rules, in order:

1. Only reads made while serving a safe request (GET, HEAD, OPTIONS) may go to a replica:
   `ReplicaReadsMiddleware` opens that window. Celery tasks, management commands and the shell
   read from the primary: they write, and then read what they wrote.
2. A visitor who wrote (POST, PUT, PATCH, DELETE answered below 500) gets a cookie that pins their
   reads to the primary for DATABASE_REPLICA_PIN_SECONDS: the order they just placed, the
   product they just edited are on their next pages even when a replica lags. A cookie, not
   server state, so it holds across app hosts behind a load balancer.
3. In that window, reads of catalog models go to a replica, and so do all reads of a view
   wrapped in `reads_from_replica` (the dashboards).
4. A replica is used only once it answers: a refused or failed connection leaves it out for
   DATABASE_REPLICA_RETRY_SECONDS and the read goes to the next one, or to the primary.
   CONN_HEALTH_CHECKS finds a kept connection to a replica that died since the last request.

Why our own router: Django's database routers are the documented hook for this, and the
maintained packages that do it (django-replicated, django-multidb-router) stop at "pin after a
write"; neither skips a replica that is down nor runs on Django 5.2 with current releases.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

# Apps whose reads go to a replica inside a safe request.
REPLICA_APPS = frozenset({"catalog"})
PIN_COOKIE = "sf_primary"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Whether this request may read from a replica at all (rule 1), and whether all its reads may
# (rule 3, the dashboards).
_replica_ok: ContextVar[bool] = ContextVar("storefront_replica_ok", default=False)
_all_reads: ContextVar[bool] = ContextVar("storefront_replica_all_reads", default=False)

_down_until: dict[str, float] = {}
_down_lock = threading.Lock()
_turn = itertools.count()


def replicas() -> list[str]:
    return list(getattr(settings, "DATABASE_REPLICAS", []))


def mark_down(alias: str, exc: BaseException) -> None:
    """Leave `alias` out for DATABASE_REPLICA_RETRY_SECONDS."""
    with _down_lock:
        was_up = _down_until.get(alias, 0.0) <= time.monotonic()
        _down_until[alias] = time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS
    if was_up:
        logger.warning(
            "database replica %s left out for %.0fs: %s",
            alias,
            settings.DATABASE_REPLICA_RETRY_SECONDS,
            exc,
        )


def reset_health() -> None:
    """Forget every replica failure (tests)."""
    with _down_lock:
        _down_until.clear()


def usable_replica() -> str | None:
    """A replica that answers (round robin over those not left out), or None."""
    aliases = replicas()
    if not aliases:
        return None
    start = next(_turn)
    now = time.monotonic()
    for i in range(len(aliases)):
        alias = aliases[(start + i) % len(aliases)]
        if _down_until.get(alias, 0.0) > now:
            continue
        wrapper = connections[alias]
        try:
            # What a cursor would do first: drop a kept connection that fails its health check
            # (once per request), then connect. A failure here costs no query its answer.
            wrapper.close_if_health_check_failed()
            wrapper.ensure_connection()
        except DatabaseError as exc:
            mark_down(alias, exc)
            continue
        return alias
    return None


class ReplicaRouter:
    """settings.DATABASE_ROUTERS when DATABASE_REPLICA_URLS is set."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        if not _replica_ok.get():
            return "default"
        if model._meta.app_label in REPLICA_APPS or _all_reads.get():
            return usable_replica() or "default"
        return "default"

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        # Replicas hold the primary's rows: an object read from one may relate to any other.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"


def pinned(request: HttpRequest) -> bool:
    """Whether this visitor wrote in the last DATABASE_REPLICA_PIN_SECONDS (their cookie)."""
    try:
        return float(request.COOKIES.get(PIN_COOKIE, "0")) > time.time()
    except ValueError:
        return False


class ReplicaReadsMiddleware:
    """Opens the replica window for safe requests of visitors who have not just written, and
    pins a visitor who writes to the primary (rules 1 and 2). Does nothing without replicas."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replicas():
            return self.get_response(request)
        safe = request.method in SAFE_METHODS
        token = _replica_ok.set(safe and not pinned(request))
        try:
            response = self.get_response(request)
        finally:
            _replica_ok.reset(token)
        if not safe and response.status_code < 500:
            seconds = settings.DATABASE_REPLICA_PIN_SECONDS
            response.set_cookie(
                PIN_COOKIE,
                f"{time.time() + seconds:.0f}",
                max_age=seconds,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response


@contextmanager
def replica_reads() -> Iterator[None]:
    """Every read inside goes to a replica (when the request may use one at all)."""
    token = _all_reads.set(True)
    try:
        yield
    finally:
        _all_reads.reset(token)


def reads_from_replica(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view whose reads may all come from a replica (dashboards: figures a few seconds old
    are fine; the visitor's own writes still pin them to the primary)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with replica_reads():
            return view(request, *args, **kwargs)

    return wrapped


def replica_lag_seconds(alias: str) -> float:
    """Seconds the replica's replay is behind: 0 when it has replayed all it received, else
    the age of the last transaction it replayed."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
            "ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) END"
        )
        row = cursor.fetchone()
    return float(row[0] or 0.0)
