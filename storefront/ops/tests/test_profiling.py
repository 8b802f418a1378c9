"""Profilers (storefront/ops/profiling.py, `storefront profile`): development only.

The debug toolbar and silk are loaded by the settings module at import, so the cases that need
them switched on run in a child pytest with the environment that switches them on
(profiling_toolbar_cases.py, profiling_silk_cases.py); this module checks they pass there, and
that production refuses both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.factories import ProductFactory, UserFactory
from tests.fresh_python import PRODUCTION, REPO, last_error, run_python

HERE = Path(__file__).resolve().parent
REFUSED = (
    "ImproperlyConfigured: STOREFRONT_PROFILING and STOREFRONT_SILK are refused when "
    "STOREFRONT_ENV=production: profilers show SQL, request data and settings to whoever reaches "
    "them. Profile a copy with STOREFRONT_ENV=dev instead (docs/profiling.md)."
)


@pytest.mark.parametrize(
    "flags", [{"STOREFRONT_PROFILING": "1"}, {"STOREFRONT_SILK": "1"}, {"STOREFRONT_SILK": "true"}]
)
def test_production_refuses_the_profilers(tmp_path: Path, flags: dict[str, str]) -> None:
    done = run_python(tmp_path, "import storefront.settings", **PRODUCTION, **flags)
    assert last_error(done).endswith(REFUSED), done.stderr


def test_the_toolbar_needs_debug(tmp_path: Path) -> None:
    done = run_python(tmp_path, "import storefront.settings", STOREFRONT_PROFILING="1")
    assert last_error(done).endswith(
        "ImproperlyConfigured: STOREFRONT_PROFILING=1 (django-debug-toolbar) needs "
        "DJANGO_DEBUG=true."
    ), done.stderr


def test_silk_sampling_percentage_is_checked(tmp_path: Path) -> None:
    done = run_python(
        tmp_path, "import storefront.settings", STOREFRONT_SILK="1", STOREFRONT_SILK_PERCENT="150"
    )
    assert last_error(done).endswith(
        "ImproperlyConfigured: STOREFRONT_SILK_PERCENT must be between 0 and 100, not 150.0"
    ), done.stderr


def test_production_has_no_profiler_urls_apps_or_middleware(tmp_path: Path) -> None:
    done = run_python(
        tmp_path,
        """
        import os
        os.environ["DJANGO_SETTINGS_MODULE"] = "storefront.settings"
        import django
        django.setup()
        from django.conf import settings
        from django.test import Client
        loaded = [n for n in settings.INSTALLED_APPS + settings.MIDDLEWARE
                  if "silk" in n or "debug_toolbar" in n]
        client = Client(SERVER_NAME="shop.example.com")
        codes = [client.get(p, secure=True).status_code
                 for p in ("/__debug__/render_panel/", "/silk/", "/silk/requests/")]
        print(loaded, codes)
        """,
        **PRODUCTION,
        # The 404 page links the site's CSS: no collectstatic manifest in a throwaway var dir.
        STATICFILES_STORAGE="django.contrib.staticfiles.storage.StaticFilesStorage",
        STOREFRONT_PROFILING="0",
        STOREFRONT_SILK="0",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] [404, 404, 404]"


def test_off_by_default_outside_production(client) -> None:
    from django.conf import settings

    assert not settings.STOREFRONT_TOOLBAR_ON
    assert not settings.STOREFRONT_SILK_ON
    assert client.get("/__debug__/render_panel/").status_code == 404
    assert client.get("/silk/").status_code == 404


def _child_pytest(tmp_path: Path, cases: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one cases module in a child pytest, on a test database of its own."""
    child_env = {**os.environ, **env}
    if connection.vendor == "postgresql":
        from tests.database_urls import direct_database_url

        # pytest-django prefixes test_ again: test_<this run's test database>_<cases>. Directly
        # on the server, also in a run through PgBouncer (its DROP DATABASE needs that).
        child_env.pop("PGBOUNCER_URL", None)
        child_env["DATABASE_URL"] = direct_database_url(
            f"{connection.settings_dict['NAME']}_{cases}"
        )
    else:
        child_env.pop("DATABASE_URL", None)
        child_env["STOREFRONT_VAR_DIR"] = str(tmp_path)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--create-db",
            "-o",
            "django_debug_mode=keep",
            str(HERE / f"profiling_{cases}_cases.py"),
        ],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_debug_toolbar_in_development(tmp_path: Path) -> None:
    done = _child_pytest(tmp_path, "toolbar", DJANGO_DEBUG="true", STOREFRONT_PROFILING="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("3 passed"), done.stdout


def test_silk_sampling_staff_only_and_pruning(tmp_path: Path) -> None:
    done = _child_pytest(tmp_path, "silk", STOREFRONT_SILK="1", STOREFRONT_SILK_PERCENT="100")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("4 passed"), done.stdout


@pytest.mark.django_db
def test_profile_command_saves_the_listing_call_tree(tmp_path: Path) -> None:
    ProductFactory.create_batch(30)
    out = StringIO()
    html = tmp_path / "listing.html"

    call_command("profile", "/products/?page=2", "--output", str(html), "--repeat", "0", stdout=out)

    first, second = out.getvalue().splitlines()
    assert first.startswith("GET /products/?page=2: 200 in ")
    assert first.endswith(" ms")
    assert second == f"call tree: {html}"
    tree = html.read_text()
    assert "pyinstrument" in tree
    # The call tree names the view and the selector behind the listing.
    assert "product_listing_page" in tree
    assert "storefront/catalog/views.py" in tree


@pytest.mark.django_db
def test_profile_command_default_file_and_logged_in_user(tmp_path: Path, settings) -> None:
    settings.VAR_DIR = tmp_path
    UserFactory(username="alice")
    out = StringIO()

    call_command("profile", "/dashboard/", "--user", "alice", "--text", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("GET /dashboard/: 200 in ")
    saved = Path(lines[1].removeprefix("call tree: "))
    assert saved.parent == tmp_path / "profiles"
    assert saved.name.endswith("-dashboard.html")
    assert saved.is_file()
    assert "customer_dashboard_page" in out.getvalue()  # the --text tree


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no-such-page/"], "no page at /no-such-page/: it matches no URL pattern"),
        (["products/"], "URL must be a path starting with /, e.g. /products/, not 'products/'"),
        (["/products/", "--repeat", "-1"], "--repeat must be 0 or more"),
        (["/products/", "--user", "nobody"], "no user named 'nobody'"),
    ],
)
@pytest.mark.django_db
def test_profile_command_refuses_bad_input(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        call_command("profile", *args, stdout=StringIO())
    assert str(excinfo.value) == message


def test_profile_command_exits_nonzero_on_an_unknown_url(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "storefront", "profile", "/no-such-page/"],
        cwd=REPO,
        env={**os.environ, "STOREFRONT_ENV": "test", "STOREFRONT_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip() == "CommandError: no page at /no-such-page/: it matches no URL pattern"
    )
