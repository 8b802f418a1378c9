"""The cache's circuit breaker against a hung Redis: one timeout per cool-down, not per call."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client

from harness.cache_servers import black_hole_server, running_redis
from storefront import caching
from storefront.redis_breaker import BreakerConnection, breaker_for
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _redis_caches(url: str, timeout: float) -> dict:
    options = {
        "SOCKET_CONNECT_TIMEOUT": timeout,
        "SOCKET_TIMEOUT": timeout,
        "IGNORE_EXCEPTIONS": True,
        "CONNECTION_POOL_KWARGS": {"connection_class": BreakerConnection},
    }
    return {
        alias: {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": options,
        }
        for alias, prefix in (("default", "sf"), ("sessions", "sfs"))
    }


def test_a_hung_redis_is_asked_once_per_cooldown_and_pages_still_answer(settings) -> None:
    product = ProductFactory(name="Brass Compass")
    with black_hole_server() as hole:
        settings.CACHES = _redis_caches(hole.url, timeout=0.2)
        settings.REDIS_BREAKER_COOLDOWN = 60
        client = Client()
        for _ in range(5):
            for url in ("/products/", product.get_absolute_url(), "/accounts/login/"):
                response = client.get(url)
                assert response.status_code == 200
                assert response["X-Storefront-Cache"] == "MISS"  # nothing cached: no Redis
        # 15 pages × several cache calls each; the breaker let one connection through.
        assert hole.accepted == 1
        assert breaker_for(f"127.0.0.1:{hole.port}").is_open


def test_the_breaker_closes_again_once_redis_answers(settings) -> None:
    ProductFactory()
    with running_redis() as server:
        settings.CACHES = _redis_caches(server.url, timeout=0.5)
        settings.REDIS_BREAKER_COOLDOWN = 0.2
        server.stop()
        assert Client().get("/products/").status_code == 200
        breaker = breaker_for(f"127.0.0.1:{server.port}")
        assert breaker.is_open

        server.start()
        import time

        time.sleep(0.3)  # past the cool-down: the next connection is the trial
        caches["default"].set("probe", 1)
        assert caches["default"].get("probe") == 1
        assert not breaker.is_open
        caching.clear()
        client = Client()
        assert [client.get("/products/")["X-Storefront-Cache"] for _ in range(2)] == [
            "MISS",
            "HIT",
        ]
