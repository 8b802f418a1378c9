"""REDIS_SENTINELS translated into cache, session and broker settings (storefront/redis_sentinel.py
and settings.py), and the clients that ask the sentinels for the master; no server is started
(the live failover is tests/scaleout/test_sentinel.py)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import redis
from redis.sentinel import SentinelManagedConnection

from harness import free_port
from storefront import redis_sentinel
from storefront.ops import health
from storefront.redis_breaker import BreakerSentinelConnection, _BreakerMixin
from tests.fresh_python import run_python

SENTINELS = "10.0.0.1:26379, 10.0.0.2:26380,10.0.0.3"


def test_parse_sentinels() -> None:
    assert redis_sentinel.parse_sentinels(SENTINELS) == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("10.0.0.3", 26379),
    ]
    assert redis_sentinel.parse_sentinels("") == []
    with pytest.raises(ValueError, match="host:port"):
        redis_sentinel.parse_sentinels("sentinel:abc")


def test_locations_keep_database_and_password() -> None:
    assert redis_sentinel.cache_location("", "shop") == "redis://shop/0"
    assert redis_sentinel.cache_location("redis://10.0.0.9:6379/3", "shop") == "redis://shop/3"
    assert (
        redis_sentinel.cache_location("redis://:p%40ss@x:1/2", "shop") == "redis://:p%40ss@shop/2"
    )
    assert redis_sentinel.broker_url([("a", 1), ("b", 2)], "redis://:pw@x/1") == (
        "sentinel://:pw@a:1/1;sentinel://:pw@b:2/1"
    )


def _settings(tmp_path: Path, **env: str) -> dict:
    code = """
        import json
        import storefront.settings as s
        def plain(value):
            return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        print(json.dumps({
            "caches": {alias: {"LOCATION": c.get("LOCATION"),
                               "OPTIONS": {k: plain(v) if not isinstance(v, dict)
                                           else {a: plain(b) for a, b in v.items()}
                                           for k, v in c.get("OPTIONS", {}).items()}}
                       for alias, c in s.CACHES.items()},
            "broker": s.CELERY_BROKER_URL,
            "transport": s.CELERY_BROKER_TRANSPORT_OPTIONS,
            "sentinels": s.REDIS_SENTINELS,
        }))
    """
    done = run_python(tmp_path, code, STOREFRONT_ENV="dev", **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_sentinels_nothing_changes(tmp_path: Path) -> None:
    got = _settings(tmp_path, REDIS_URL="redis://127.0.0.1:6379/4")
    for alias in ("default", "sessions"):
        options = got["caches"][alias]["OPTIONS"]
        assert got["caches"][alias]["LOCATION"] == "redis://127.0.0.1:6379/4"
        assert "CONNECTION_FACTORY" not in options
        assert "BreakerConnection" in options["CONNECTION_POOL_KWARGS"]["connection_class"]
    assert got["broker"] == "redis://127.0.0.1:6379/4"
    assert got["transport"] == {"visibility_timeout": 3600}


def test_sentinels_configure_cache_sessions_and_broker(tmp_path: Path) -> None:
    got = _settings(
        tmp_path,
        REDIS_SENTINELS=SENTINELS,
        REDIS_SENTINEL_MASTER="shop",
        REDIS_SENTINEL_PASSWORD="sentinel-secret",
        REDIS_URL="redis://:redis-secret@old-host:6379/2",
    )
    for alias in ("default", "sessions"):
        cache = got["caches"][alias]
        options = cache["OPTIONS"]
        assert cache["LOCATION"] == "redis://:redis-secret@shop/2"
        assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
        assert "BreakerSentinelConnection" in options["CONNECTION_POOL_KWARGS"]["connection_class"]
        assert options["IGNORE_EXCEPTIONS"] is True
        assert options["SOCKET_TIMEOUT"] == options["SOCKET_CONNECT_TIMEOUT"] == 0.25
        assert options["SENTINEL_KWARGS"]["password"] == "sentinel-secret"
        assert options["SENTINEL_KWARGS"]["socket_timeout"] == 0.25
    assert got["broker"] == (
        "sentinel://:redis-secret@10.0.0.1:26379/2;sentinel://:redis-secret@10.0.0.2:26380/2;"
        "sentinel://:redis-secret@10.0.0.3:26379/2"
    )
    assert got["transport"]["master_name"] == "shop"
    assert got["transport"]["visibility_timeout"] == 3600
    assert got["transport"]["sentinel_kwargs"]["password"] == "sentinel-secret"


def test_sentinels_alone_are_enough(tmp_path: Path) -> None:
    """No REDIS_URL: Redis anyway (database 0 of the default master), not the file cache."""
    got = _settings(tmp_path, REDIS_SENTINELS="127.0.0.1:26379")
    assert got["caches"]["default"]["LOCATION"] == "redis://storefront/0"
    assert got["broker"] == "sentinel://127.0.0.1:26379/0"
    assert got["transport"]["master_name"] == "storefront"


def test_explicit_broker_url_wins(tmp_path: Path) -> None:
    got = _settings(
        tmp_path, REDIS_SENTINELS="127.0.0.1:26379", CELERY_BROKER_URL="amqp://mq:5672//"
    )
    assert got["broker"] == "amqp://mq:5672//"
    assert "master_name" not in got["transport"]


def test_breaker_guards_sentinel_connections() -> None:
    """The breaker mixin comes first, and redis-py's Sentinel connection still connects
    through connect_check_health once it knows the master's address (an upgrade that moves
    this fails here)."""
    mro = BreakerSentinelConnection.__mro__
    assert mro.index(_BreakerMixin) < mro.index(SentinelManagedConnection)
    source = inspect.getsource(SentinelManagedConnection.connect_to)
    assert "self.host, self.port = address" in source
    assert "connect_check_health" in source


def test_clients_ask_the_sentinels(settings) -> None:
    """A sentinel:// broker URL, or a location naming the master, is resolved through the
    sentinels: none answering is a ConnectionError (/readyz: broker not ready)."""
    dead = [("127.0.0.1", free_port())]
    settings.REDIS_SENTINELS = dead
    settings.REDIS_SENTINEL_MASTER = "shop"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"master_name": "shop"}
    for url in (f"sentinel://127.0.0.1:{dead[0][1]}/0", "redis://shop/0"):
        with pytest.raises(redis.ConnectionError, match="No master found for 'shop'"):
            redis_sentinel.redis_client(url, timeout=0.5)
    settings.STOREFRONT_BROKER_URL = f"sentinel://127.0.0.1:{dead[0][1]}/0"
    with pytest.raises(redis.ConnectionError):
        health.check_broker()
    # Any other URL: a plain client, as before.
    client, where = redis_sentinel.redis_client("redis://127.0.0.1:1/0", timeout=0.5)
    assert where == "redis"
    assert client.connection_pool.connection_kwargs["port"] == 1
