"""Redis Sentinel: the settings translation (REDIS_SENTINELS) and clients of the current master.

With REDIS_SENTINELS set (docs/redis-failover.md), nobody names a Redis server by address: the
sentinels say which server is the master of REDIS_SENTINEL_MASTER right now, and a failover
changes the answer. Three users need that answer:

- the cache aliases: django-redis's SentinelConnectionFactory with a LOCATION that names the
  master, `redis://[:password@]<master name>/<db>` (`cache_location`), through
  storefront.redis_breaker.BreakerSentinelConnection (the circuit breaker, per server address);
- the Celery broker: kombu's `sentinel://host:port;sentinel://host:port/<db>` URL (`broker_url`)
  with `master_name` in the transport options;
- whatever opens its own connection (/readyz, the queue-length metrics, the ops sample):
  `redis_client()` asks the sentinels for the master of a `sentinel://` broker URL or of a
  cache location, and opens a plain client for any other URL, as before.

Only pure functions run at settings import time; `redis_client` reads django.conf.settings.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

SENTINEL_PORT = 26379
SENTINEL_SCHEME = "sentinel"


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """REDIS_SENTINELS, "host:port,host:port" (port default 26379), as (host, port) pairs."""
    sentinels = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(SENTINEL_PORT)
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS: {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    return sentinels


def _db_and_password(url: str) -> tuple[int, str]:
    """The database number and password of a redis:// URL (0 and "" when it has none)."""
    if not url:
        return 0, ""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return db, unquote(parts.password or "")


def cache_location(url: str, master: str) -> str:
    """django-redis's Sentinel LOCATION for the Redis URL `url`: its database number and
    password kept, its host replaced by the master's name (the sentinels know the address)."""
    db, password = _db_and_password(url)
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{master}/{db}"


def broker_url(sentinels: list[tuple[str, int]], url: str) -> str:
    """kombu's Sentinel broker URL: one `sentinel://host:port` per sentinel, `;` separated,
    each with the database number (and master password) of the Redis URL `url`."""
    db, password = _db_and_password(url)
    auth = f":{quote(password, safe='')}@" if password else ""
    return ";".join(f"{SENTINEL_SCHEME}://{auth}{host}:{port}/{db}" for host, port in sentinels)


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def sentinel_kwargs(password: str, timeout: float) -> dict:
    """Connection arguments for the sentinels themselves (not the Redis servers)."""
    kwargs: dict = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if password:
        kwargs["password"] = password
    return kwargs


def _sentinel_target(url: str) -> tuple[list[tuple[str, int]], str, int, str] | None:
    """(sentinels, master name, db, password) when `url` must be resolved by the sentinels: a
    `sentinel://` URL, or a cache location naming REDIS_SENTINEL_MASTER; None otherwise."""
    from django.conf import settings

    configured = getattr(settings, "REDIS_SENTINELS", [])
    master = getattr(settings, "REDIS_SENTINEL_MASTER", "")
    if is_sentinel_url(url):
        sentinels = []
        for part in url.split(";"):
            parts = urlsplit(part.strip())
            if parts.scheme == SENTINEL_SCHEME and parts.hostname:
                sentinels.append((parts.hostname, parts.port or SENTINEL_PORT))
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        db, password = _db_and_password(url.split(";")[0])
        return sentinels, options.get("master_name", master), db, password
    if configured and url.startswith("redis://") and urlsplit(url).hostname == master:
        db, password = _db_and_password(url)
        return list(configured), master, db, password
    return None


def redis_client(url: str, *, timeout: float):  # -> tuple[redis.Redis, str]
    """A client of the Redis `url` names, and where that is ("host:port", or the URL's own
    location): the sentinels' current master for a Sentinel URL (MasterNotFoundError, a
    ConnectionError, while none is known), `redis.Redis.from_url` for any other."""
    import redis
    from django.conf import settings
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    target = _sentinel_target(url)
    if target is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return client, "redis"
    sentinels, master, db, password = target
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs=sentinel_kwargs(getattr(settings, "REDIS_SENTINEL_PASSWORD", ""), timeout),
    )
    try:
        host, port = sentinel.discover_master(master)
    finally:
        sentinel.close()
    # No retries: redis-py's default (10, backing off up to 1 s each) kept a /readyz asked
    # mid-failover busy for 4 s, a sync gunicorn worker with it (tests/scaleout).
    client = redis.Redis(
        host=host,
        port=port,
        db=db,
        password=password or None,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return client, f"sentinel master {master} at {host}:{port}"
