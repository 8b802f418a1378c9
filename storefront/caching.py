"""Cache keys, versions, invalidation and hit counters: the one module that names cache entries.

Key scheme (Django adds its KEY_PREFIX "sf" in front)::

    g<global>:<namespace>:<kind>:<parts...>:<versions...>

* ``<global>`` is ``STOREFRONT_CACHE_VERSION`` (set per deploy, e.g. to the release id)
  joined with a stored generation that ``storefront cache clear`` bumps: changing either
  orphans every entry at once (old entries simply expire by TTL).
* ``<namespace>`` is one of NAMESPACES. Each has a version counter stored in the cache; every
  key of the namespace embeds it, so bumping the counter invalidates the whole namespace in one
  write (cascading invalidation without scanning keys).
* Scoped counters narrow invalidation inside a namespace: ``product:<slug>`` (one product's
  page and detail query), ``stock`` (the low-stock figures shown on listings and cards),
  ``user:<id>`` (one customer's dashboard).
* Rotating aggregates (the staff dashboard) use a time bucket, ``t<n>``: a new key every
  ``STOREFRONT_CACHE_TTL_STAFF`` seconds, so those figures are at most that old.

Versions start from a time-based number rather than 1, so counters lost with the cache (Redis
restart, FLUSHALL) can never come back to a value that still names stale entries.

Why not Django's ``cache_page``/``{% cache %}``: their keys cannot carry our version counters
(invalidation would need key scans), they vary on every cookie, and they cannot count hits per
namespace or hand each client its own CSRF token from a shared cached page (see cache_pages.py).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache, caches
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storefront.ops import metrics

logger = logging.getLogger("storefront.cache")

T = TypeVar("T")

# catalog: listing and product pages, product detail and category-tree queries.
# dashboards: customer and staff dashboards. accounts: the anonymous login page.
NAMESPACES = ("catalog", "dashboards", "accounts")
GLOBAL_GENERATION_KEY = "ver:global"
STATS_KEY = "stats:{namespace}:{outcome}"
_MISSING = object()
MISSING = _MISSING  # what `lookup` returns for an entry that is absent or stale


def _version_key(counter: str) -> str:
    return f"ver:{counter}"


def _initial_version() -> int:
    return time.time_ns() // 1000  # microseconds: unique enough across restarts


def _check(namespace: str) -> None:
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown cache namespace {namespace!r}; one of {', '.join(NAMESPACES)}")


# Counters already read while rendering one cached page (see `versions_snapshot`), and the
# entries `prefetch` read ahead for it (_MISSING: known to be absent).
_snapshot: ContextVar[dict[str, int] | None] = ContextVar("storefront_cache_versions", default=None)
_prefetched: ContextVar[dict[str, Any] | None] = ContextVar("storefront_cache_ahead", default=None)


@contextlib.contextmanager
def versions_snapshot() -> Iterator[None]:
    """Read each version counter at most once inside the block (one page being rendered).

    The page-cache lookup reads ``global``, the namespace's and the page's scoped counters;
    the cached queries and fragments the page then uses depend on the same counters, so they
    reuse those values instead of a round trip each. A bump in this thread (a write on commit)
    drops the counter from the snapshot; a bump by another process during the block is seen by
    the next request, as it would be had it come a moment later.
    """
    if _snapshot.get() is not None:  # already inside one (the page's middleware opened it)
        yield
        return
    token, ahead = _snapshot.set({}), _prefetched.set({})
    try:
        yield
    finally:
        _prefetched.reset(ahead)
        _snapshot.reset(token)


# Errors django-redis turns into misses (its IGNORE_EXCEPTIONS): the same list as its own.
_REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, RedisResponseError, TimeoutError)
_PICKLE_MARK = pickle.PROTO  # the opcode every pickle of protocol 2 and up starts with
_FAST = "_storefront_fast_reads"


def read_many(keys: Sequence[str]) -> dict[str, Any]:
    """``cache.get_many(keys)``: the same answer, for the pages' hot reads.

    Why not django-redis's get_many as is: it decodes each value by first trying ``int()`` on
    the pickle bytes (an exception per value) inside a suppressed compressor call, ~5 µs a
    value; a listing reads ~30 values per request and a page-cache hit four. With django-redis'
    default client, pickle serializer and no compressor (ours, settings.py), a value is either
    a pickle or an int stored as digits, which is all this decodes itself; any other backend
    or configuration is handed to ``cache.get_many``. Connection errors are misses, as there.
    """
    backend = caches["default"]
    fast = getattr(backend, _FAST, None)
    if fast is None:
        fast = _fast_reads_possible(backend)
        setattr(backend, _FAST, fast)
    if not fast or not keys:
        return backend.get_many(keys)
    client = backend.client
    prefix, version, key_func = backend.key_prefix, backend.version, backend.key_func
    try:
        values = _mget(client.get_client(write=False), [key_func(k, prefix, version) for k in keys])
    except _REDIS_ERRORS:
        if not backend._ignore_exceptions:
            raise
        if backend._log_ignored_exceptions:
            backend.logger.exception("Exception ignored")
        return {}
    found = {}
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            is_pickle = value[:1] == _PICKLE_MARK
            found[key] = client._serializer.loads(value) if is_pickle else client.decode(value)
    return found


def _mget(redis_client: Any, keys: list[str]) -> list[bytes | None]:
    """``redis_client.mget(keys)`` on one of its pool's connections, with its retry policy.

    Why not ``Redis.mget``: redis-py 8's command layer around the connection (observability
    records, HIMPORT dispatch, response callbacks, option parsing) costs ~33 µs of CPU per
    command here, measured against the connection's own send/read (80 vs 47 µs per MGET of a
    page hit; an app-cache hit makes one, an uncached listing two). What it does that matters
    is kept: a pooled connection, the connection's own retry (disconnect and try again on a
    connection error, e.g. the first command after a Redis restart) and the release. The
    breaker (storefront/redis_breaker.py) sits in the connection, so it still decides.
    """
    pool = redis_client.connection_pool
    conn = pool.get_connection()

    def send_and_read() -> list[bytes | None]:
        conn.send_command("MGET", *keys)
        return conn.read_response()

    try:
        return conn.retry.call_with_retry(send_and_read, lambda _error: conn.disconnect())
    finally:
        pool.release(conn)


def _fast_reads_possible(backend: Any) -> bool:
    try:
        from django_redis.cache import RedisCache
        from django_redis.client import DefaultClient
        from django_redis.compressors.identity import IdentityCompressor
        from django_redis.serializers.pickle import PickleSerializer
    except ImportError:  # pragma: no cover - django-redis is a dependency
        return False
    return (
        isinstance(backend, RedisCache)
        and type(backend.client) is DefaultClient
        and type(backend.client._serializer) is PickleSerializer
        and type(backend.client._compressor) is IdentityCompressor
    )


def prefetch(keys: Iterable[str]) -> None:
    """Read these entries in one round trip for the `get`/`get_or_set` calls that follow.

    Only inside `versions_snapshot` (elsewhere it does nothing): a page that knows which cached
    queries it will use asks for all of them at once instead of one round trip each.
    """
    ahead = _prefetched.get()
    if ahead is None:
        return
    wanted = [key for key in keys if key not in ahead]
    if wanted:
        found = read_many(wanted)
        ahead.update((key, found.get(key, _MISSING)) for key in wanted)


def _cached(key: str) -> Any:
    """The entry for `key` (or _MISSING), from what `prefetch` read if it read it."""
    ahead = _prefetched.get()
    if ahead is not None and key in ahead:
        return ahead.pop(key)  # once: a later read (after a store) goes to the cache again
    return cache.get(key, _MISSING)


def versions(counters: Iterable[str], *, also: Iterable[str] = ()) -> dict[str, Any]:
    """Current value of each version counter (one round trip; missing ones are created).

    Keys in `also` are fetched in the same round trip and returned under their own names
    when present (see `lookup`). Inside `versions_snapshot`, counters read before are not read
    again (no round trip at all when every counter is known and `also` is empty).
    """
    counters = list(counters)
    known = _snapshot.get()
    result: dict[str, Any] = {}
    if known is not None:
        result.update((c, known[c]) for c in counters if c in known)
        counters = [c for c in counters if c not in known]
    extra = list(also)
    if not counters and not extra:
        return result
    keys = {_version_key(c): c for c in counters}
    found = read_many([*keys, *extra])
    result.update((key, found[key]) for key in extra if key in found)
    for key, counter in keys.items():
        value = found.get(key)
        if value is None:
            value = _initial_version()
            # add(): if another process created it meanwhile, theirs wins; read it back.
            if not cache.add(key, value, timeout=None):
                value = cache.get(key, value)
        result[counter] = int(value)
        if known is not None:
            known[counter] = result[counter]
    return result


def _bump(counter: str) -> None:
    known = _snapshot.get()
    if known is not None:
        known.pop(counter, None)
    key = _version_key(counter)
    try:
        cache.incr(key)
    except ValueError:  # not there (evicted, flushed, never read): any fresh value will do
        cache.set(key, _initial_version(), timeout=None)


def bump_namespace(namespace: str) -> None:
    """Invalidate every entry of `namespace`."""
    _check(namespace)
    _bump(f"ns:{namespace}")
    logger.info("cache namespace %s invalidated", namespace)


def bump_products(slugs: Iterable[str]) -> None:
    """Invalidate the pages and cached queries of these products only."""
    for slug in set(slugs):
        _bump(f"product:{slug}")


def bump_stock_display() -> None:
    """Invalidate everything that shows low-stock figures (listings, product cards)."""
    _bump("stock")


def bump_user(user_id: int) -> None:
    """Invalidate one user's cached figures (their dashboard)."""
    _bump(f"user:{user_id}")


def clear(namespace: str | None = None) -> None:
    """Manual invalidation: one namespace, or everything (bumps the global generation)."""
    if namespace is not None:
        bump_namespace(namespace)
        return
    _bump("global")
    logger.info("cache cleared: global generation bumped")


def time_bucket(seconds: int, now: float | None = None) -> int:
    """The number of the `seconds`-long window `now` falls in (keys rotate with it)."""
    return int((time.time() if now is None else now) // max(1, seconds))


def make_key(
    namespace: str,
    kind: str,
    *parts: object,
    scopes: Iterable[str] = (),
    bucket_seconds: int | None = None,
) -> str:
    """The full key for an entry of `namespace`, embedding every version it depends on.

    `scopes` are scoped counters the entry also depends on (``product:<slug>``, ``stock``,
    ``user:<id>``); `bucket_seconds` adds a time bucket. Long parts are hashed.
    """
    [key] = make_keys(namespace, kind, [parts], scopes=scopes, bucket_seconds=bucket_seconds)
    return key


def make_keys(
    namespace: str,
    kind: str,
    parts_of_each: Iterable[Sequence[object]],
    *,
    scopes: Iterable[str] = (),
    bucket_seconds: int | None = None,
) -> list[str]:
    """`make_key` for several entries of one kind (one read of the versions for all)."""
    _check(namespace)
    scopes = list(scopes)
    current = versions(["global", f"ns:{namespace}", *scopes])
    generation = f"{settings.STOREFRONT_CACHE_VERSION}.{current['global']}"
    suffix = ".".join(str(current[s]) for s in [f"ns:{namespace}", *scopes])
    if bucket_seconds:
        suffix += f":t{time_bucket(bucket_seconds)}"
    keys = []
    for parts in parts_of_each:
        text = ":".join(str(p) for p in parts)
        if len(text) > 80:
            text = hashlib.sha256(text.encode()).hexdigest()
        keys.append(f"g{generation}:{namespace}:{kind}:{text}:v{suffix}")
    return keys


@dataclass(frozen=True)
class Slot:
    """Where `lookup` looked: the entry's key and the versions a fresh value is stamped with."""

    namespace: str
    key: str
    stamp: tuple[int, ...]


def lookup(
    namespace: str, kind: str, *parts: object, scopes: Iterable[str] = ()
) -> tuple[Any, Slot]:
    """The cached value of an entry (or MISSING) and its slot, in ONE round trip (counted).

    The hot-path alternative to make_key + get: the key carries no versions; the value is
    stored stamped with them (`store_in`), and fetched together with the current counters,
    so a stale stamp is a miss. Each page then has one key instead of one per version, and a
    hit costs one MGET instead of two round trips.
    """
    _check(namespace)
    counters = ["global", f"ns:{namespace}", *scopes]
    text = ":".join(str(p) for p in parts)
    if len(text) > 80:
        text = hashlib.sha256(text.encode()).hexdigest()
    key = f"s{settings.STOREFRONT_CACHE_VERSION}:{namespace}:{kind}:{text}"
    current = versions(counters, also=[key])
    stamp = tuple(int(current[c]) for c in counters)
    entry = current.get(key)
    fresh = isinstance(entry, tuple) and len(entry) == 2 and entry[0] == stamp
    record(namespace, hit=fresh)
    return (entry[1] if fresh else MISSING), Slot(namespace=namespace, key=key, stamp=stamp)


def store_in(slot: Slot, value: Any, timeout: int) -> None:
    """Store `value` where `lookup` found nothing fresh, stamped with the versions it saw."""
    cache.set(slot.key, (slot.stamp, value), timeout=timeout)


def get(namespace: str, key: str, default: Any = None) -> Any:
    """A cached value (counted as a hit or a miss for `namespace`)."""
    value = _cached(key)
    record(namespace, hit=value is not _MISSING)
    return default if value is _MISSING else value


def store(key: str, value: Any, timeout: int) -> None:
    """Store `value` under a key from `make_key` (what `get` then finds)."""
    cache.set(key, value, timeout=timeout)


def get_many(namespace: str, keys: Sequence[str]) -> dict[str, Any]:
    """The cached values of these keys that exist, in one round trip (each counted)."""
    # A copy: with Redis down, django-redis answers with one shared {} that callers must not fill.
    found = dict(read_many(list(keys)) or {})
    hits = sum(key in found for key in keys)
    record_many(namespace, hits=hits, misses=len(keys) - hits)
    return found


def store_many(values: dict[str, Any], timeout: int) -> None:
    """Store several entries (keys from `make_keys`) in one round trip."""
    cache.set_many(values, timeout=timeout)


def get_or_set(namespace: str, key: str, compute: Callable[[], T], timeout: int) -> T:
    """The cached value for `key`, computing and storing it on a miss (counted)."""
    value = _cached(key)
    record(namespace, hit=value is not _MISSING)
    if value is _MISSING:
        value = compute()
        cache.set(key, value, timeout=timeout)
    return value


# Hit/miss counters per namespace. Counted in process memory and added to the shared counters
# (Redis INCRBY, atomic across workers) at most once a second per process. `stats()` flushes
# this process's counts first; other workers' show up within a second. (Measured: a page-cache
# hit took 1.18 ms with a round trip per lookup, 0.92 ms without.) On the file cache (embedded
# mode) concurrent increments may occasionally be lost, which only skews the ratio.
FLUSH_SECONDS = 1.0
_pending: dict[str, int] = {}
_pending_lock = threading.Lock()
_last_flush = [0.0]


def record(namespace: str, *, hit: bool) -> None:
    record_many(namespace, hits=1 if hit else 0, misses=0 if hit else 1)


def record_many(namespace: str, *, hits: int, misses: int) -> None:
    """Count several lookups at once (a page's cards: one counter update, not one per card)."""
    counts = (("hit", "hits", hits), ("miss", "misses", misses))
    for label, _, n in counts:
        if n:
            metrics.cache_lookups.labels(namespace, label).inc(n)
    with _pending_lock:
        for _, outcome, n in counts:
            if n:
                key = STATS_KEY.format(namespace=namespace, outcome=outcome)
                _pending[key] = _pending.get(key, 0) + n
        due = time.monotonic() - _last_flush[0] >= FLUSH_SECONDS
    if due:
        flush_stats()


def flush_stats() -> None:
    """Add this process's pending counts to the shared counters."""
    with _pending_lock:
        pending = dict(_pending)
        _pending.clear()
        _last_flush[0] = time.monotonic()
    for key, count in pending.items():
        try:
            cache.incr(key, count)
        except ValueError:
            if not cache.add(key, count, timeout=None):
                with contextlib.suppress(ValueError):  # evicted between add and incr: lost
                    cache.incr(key, count)


@atexit.register
def _flush_stats_at_exit() -> None:
    # A worker recycled by gunicorn (max_requests) hands in its last second of counts.
    with contextlib.suppress(Exception):
        flush_stats()


def stats() -> dict[str, dict[str, float]]:
    """Hits, misses and hit ratio per namespace since the counters were last reset."""
    flush_stats()
    keys = {
        (ns, outcome): STATS_KEY.format(namespace=ns, outcome=outcome)
        for ns in NAMESPACES
        for outcome in ("hits", "misses")
    }
    found = cache.get_many(list(keys.values()))
    result: dict[str, dict[str, float]] = {}
    for ns in NAMESPACES:
        hits = int(found.get(keys[(ns, "hits")], 0) or 0)
        misses = int(found.get(keys[(ns, "misses")], 0) or 0)
        total = hits + misses
        result[ns] = {
            "hits": hits,
            "misses": misses,
            "hit_ratio": round(hits / total, 4) if total else 0.0,
        }
    return result


def reset_stats() -> None:
    with _pending_lock:
        _pending.clear()
    cache.delete_many(
        [STATS_KEY.format(namespace=ns, outcome=o) for ns in NAMESPACES for o in ("hits", "misses")]
    )


def backend_size() -> dict[str, Any]:
    """Memory and key count of the cache server (Redis: INFO memory + DBSIZE)."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.startswith("django_redis."):
        from django_redis import get_redis_connection

        client = get_redis_connection("default")
        memory = client.info("memory")
        return {
            "backend": "redis",
            "used_memory": int(memory["used_memory"]),
            "used_memory_human": memory.get("used_memory_human", ""),
            "keys": int(client.dbsize()),
        }
    if backend.endswith("FileBasedCache"):
        from pathlib import Path

        files = list(Path(settings.CACHES["default"]["LOCATION"]).glob("*.djcache"))
        return {
            "backend": "file",
            "used_memory": sum(f.stat().st_size for f in files),
            "keys": len(files),
        }
    return {"backend": backend.rsplit(".", 1)[-1], "used_memory": None, "keys": None}
