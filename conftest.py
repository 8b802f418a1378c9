"""Root pytest configuration: test settings, service requirements, shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Unavailable
from harness.smtp import SmtpSink, running_smtp_sink
from tests.celery_worker import CeleryWorker, running_worker

# tests/compose builds and runs the Docker images (minutes, a running Docker engine):
# `make compose-test` runs them, with STOREFRONT_COMPOSE_TEST=1; `make test` leaves them out.
COMPOSE_TESTS = os.environ.get("STOREFRONT_COMPOSE_TEST") == "1"
collect_ignore_glob = [] if COMPOSE_TESTS else ["tests/compose/*"]


def services_required() -> bool:
    """With STOREFRONT_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the test."""
    return os.environ.get("STOREFRONT_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """A binary or service the harness needs is missing (in a fixture): skip, or fail."""
    try:
        return (yield)
    except Unavailable as exc:
        skip_or_fail(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The same for a server a test starts itself (harness.cache_servers)."""
    try:
        return (yield)
    except Unavailable as exc:
        skip_or_fail(str(exc))


@pytest.fixture
def require_postgres() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with nothing cached (a new global generation) and zeroed counters.

    Not cache.clear(): on Redis that is FLUSHDB, which would also drop the Celery queue and
    the sessions of a worker test running against the same database.
    """
    from storefront import caching, redis_breaker

    redis_breaker.reset_all()  # a previous test may have tripped it on purpose
    caching.clear()
    caching.reset_stats()


@pytest.fixture
def smtp_sink(settings) -> Iterator[SmtpSink]:
    """A real SMTP server on loopback; the test's email settings point at it."""
    with running_smtp_sink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = sink.host
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        yield sink


@pytest.fixture
def require_redis() -> None:
    from django.conf import settings

    if not settings.REDIS_URL:
        skip_or_fail("needs Redis (set REDIS_URL=redis://127.0.0.1:6379/0)")


@pytest.fixture
def celery_worker(
    require_postgres: None, require_redis: None, smtp_sink: SmtpSink, tmp_path: Path
) -> Iterator[CeleryWorker]:
    """A real Celery worker consuming this run's queue, mailing to `smtp_sink`.

    Tests using it need `@pytest.mark.django_db(transaction=True)` (the worker sees only
    committed rows). Tasks sent while it runs go to it through Redis instead of running eagerly.
    """
    from django.conf import settings

    with running_worker(
        tmp_path / "celery-worker.log", email_url=smtp_sink.url, media_root=settings.MEDIA_ROOT
    ) as worker:
        yield worker
