"""Error reporting to Sentry (or a Sentry-compatible server such as GlitchTip), from the settings.

On only when `SENTRY_DSN` is set; then every web process and every Celery worker and beat (they
all load the settings) report unhandled exceptions: a view's 500, a failed task. Each event is
tagged with the release (`STOREFRONT_RELEASE`, e.g. the release id deploy.sh installs) and the
environment (`SENTRY_ENVIRONMENT`, else `STOREFRONT_ENV`). No personal data is sent
(`send_default_pii=False`: no cookies, user addresses or request bodies). docs/profiling.md#errors
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from django.core.exceptions import ImproperlyConfigured


def release_name(environ: Mapping[str, str]) -> str:
    """The release events are tagged with: STOREFRONT_RELEASE, else storefront@<package version>."""
    release = environ.get("STOREFRONT_RELEASE", "").strip()
    if release:
        return release
    try:
        return f"storefront@{version('storefront')}"
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "storefront@unknown"


def init_error_reporting(
    environ: Mapping[str, str], *, storefront_env: str
) -> dict[str, object] | None:
    """Initialise sentry-sdk for Django and Celery when SENTRY_DSN is set.

    Returns the options used (for tests and `storefront diffsettings`-style checks), or None when
    reporting is off. Raises ImproperlyConfigured for a sample rate outside 0..1.
    """
    dsn = environ.get("SENTRY_DSN", "").strip()
    if not dsn:
        return None
    try:
        traces_sample_rate = float(environ.get("SENTRY_TRACES_SAMPLE_RATE", "0") or 0)
    except ValueError:
        traces_sample_rate = -1.0
    if not 0 <= traces_sample_rate <= 1:
        raise ImproperlyConfigured(
            "SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, not "
            f"{environ.get('SENTRY_TRACES_SAMPLE_RATE')!r}"
        )

    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    options: dict[str, object] = {
        "dsn": dsn,
        "release": release_name(environ),
        "environment": environ.get("SENTRY_ENVIRONMENT", "").strip() or storefront_env,
        # Performance traces cost quota and overhead: off unless asked for.
        "traces_sample_rate": traces_sample_rate,
        "send_default_pii": False,
    }
    sentry_sdk.init(
        **options,
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=False)],
    )
    return options
