"""Which profilers this process loads: django-debug-toolbar and django-silk (docs/profiling.md).

Both are development tools: they show SQL, settings and request data to whoever reaches them, so
the settings module asks this module what to add, and production is refused outright, the same
way `DJANGO_DEBUG` is. Neither package is even imported unless its flag is on, so a production
install (without the dev extras) never loads them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured


@dataclass
class ProfilingSetup:
    """What settings.py adds for the profilers that are switched on."""

    installed_apps: list[str] = field(default_factory=list)
    # (middleware path, the existing middleware it goes right after)
    middleware: list[tuple[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    toolbar: bool = False
    silk: bool = False


def _require(module: str, flag: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImproperlyConfigured(
            f"{flag}=1 needs the {module} package, installed with the dev extras "
            "(`make install`, or `pip install -e '.[dev]'`)."
        )


def profiling_setup(
    *,
    is_production: bool,
    debug: bool,
    toolbar_flag: bool,
    silk_flag: bool,
    silk_percent: float,
    silk_max_requests: int,
) -> ProfilingSetup:
    """Decide what to load for `STOREFRONT_PROFILING` (debug toolbar) and `STOREFRONT_SILK`.

    Raises ImproperlyConfigured for production, for the toolbar without `DJANGO_DEBUG`, for a
    sampling percentage outside 0..100, and when the package is not installed.
    """
    if is_production and (toolbar_flag or silk_flag):
        raise ImproperlyConfigured(
            "STOREFRONT_PROFILING and STOREFRONT_SILK are refused when STOREFRONT_ENV=production: "
            "profilers show SQL, request data and settings to whoever reaches them. Profile a "
            "copy with STOREFRONT_ENV=dev instead (docs/profiling.md)."
        )
    setup = ProfilingSetup()
    if toolbar_flag:
        if not debug:
            raise ImproperlyConfigured(
                "STOREFRONT_PROFILING=1 (django-debug-toolbar) needs DJANGO_DEBUG=true."
            )
        _require("debug_toolbar", "STOREFRONT_PROFILING")
        setup.toolbar = True
        setup.installed_apps.append("debug_toolbar")
        # After WhiteNoise: static files are answered before the toolbar looks at the request.
        setup.middleware.append(
            (
                "debug_toolbar.middleware.DebugToolbarMiddleware",
                "whitenoise.middleware.WhiteNoiseMiddleware",
            )
        )
        setup.settings.update(
            # The toolbar shows for requests from this machine only (runserver, make run).
            INTERNAL_IPS=["127.0.0.1", "::1"],
            DEBUG_TOOLBAR_CONFIG={
                # The toolbar refuses to load under a test runner; the tests that check it
                # (storefront/ops/tests/test_profiling.py) run it as in development.
                "IS_RUNNING_TESTS": False,
            },
        )
    if silk_flag:
        if not 0 <= silk_percent <= 100:
            raise ImproperlyConfigured(
                f"STOREFRONT_SILK_PERCENT must be between 0 and 100, not {silk_percent}"
            )
        _require("silk", "STOREFRONT_SILK")
        setup.silk = True
        setup.installed_apps.append("silk")
        # After authentication: silk records the user; its own pages check staff status.
        setup.middleware.append(
            (
                "silk.middleware.SilkyMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
            )
        )
        setup.settings.update(
            SILKY_INTERCEPT_PERCENT=silk_percent,
            # /silk/ is for logged-in staff only (anonymous: login page, customers: 403).
            SILKY_AUTHENTICATION=True,
            SILKY_AUTHORISATION=True,
            SILKY_PERMISSIONS=_staff_only,
            # Bounded storage: beyond this many requests, the oldest are deleted (checked on
            # 10 % of recorded requests); storefront.ops.tasks.prune_silk drops old ones too.
            SILKY_MAX_RECORDED_REQUESTS=silk_max_requests,
            SILKY_MAX_RECORDED_REQUESTS_CHECK_PERCENT=10,
            # Request and response bodies can hold passwords and addresses: not stored.
            SILKY_MAX_REQUEST_BODY_SIZE=0,
            SILKY_MAX_RESPONSE_BODY_SIZE=0,
            SILKY_IGNORE_PATHS=["/healthz", "/readyz", "/metrics"],
            SILKY_META=True,
        )
    return setup


def _staff_only(user: Any) -> bool:
    return bool(user and user.is_active and user.is_staff)
