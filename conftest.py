"""Root pytest configuration: test settings, service requirements, shared fixtures."""

from __future__ import annotations

import os

import pytest


def services_required() -> bool:
    """With STOREFRONT_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the test."""
    return os.environ.get("STOREFRONT_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def require_postgres() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
