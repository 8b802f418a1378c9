"""storefront/settings.py as a deployment loads it: each case imports the settings module in a
fresh interpreter with exactly the given environment, as gunicorn would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.fresh_python import PRODUCTION, REPO, last_error, run_python, setting

sys.path.insert(0, str(REPO / "scripts"))
import render_nginx


@pytest.mark.parametrize("debug", ["true", "1", "yes"])
def test_production_refuses_debug(tmp_path: Path, debug: str) -> None:
    done = run_python(tmp_path, "import storefront.settings", **PRODUCTION, DJANGO_DEBUG=debug)
    assert last_error(done).endswith(
        "ImproperlyConfigured: DJANGO_DEBUG=true is refused when STOREFRONT_ENV=production: "
        "debug pages would show settings, SQL and tracebacks to every visitor. Unset "
        "DJANGO_DEBUG, or run with STOREFRONT_ENV=dev."
    ), done.stderr


def test_debug_stays_available_outside_production(tmp_path: Path) -> None:
    assert setting(tmp_path, "s.DEBUG", STOREFRONT_ENV="dev", DJANGO_DEBUG="true") == "True"
    assert setting(tmp_path, "s.DEBUG", **PRODUCTION, DJANGO_DEBUG="false") == "False"


IS_SECURE = """
    import django, os
    os.environ["DJANGO_SETTINGS_MODULE"] = "storefront.settings"
    django.setup()
    from django.test import RequestFactory
    request = RequestFactory().get(
        "/", HTTP_HOST="shop.example.com", HTTP_X_FORWARDED_PROTO="https"
    )
    print(request.is_secure(), request.build_absolute_uri("/"))
"""


@pytest.mark.parametrize(
    ("proxy_env", "secure"),
    [
        ({}, False),
        ({"STOREFRONT_BEHIND_PROXY": "0"}, False),
        ({"STOREFRONT_BEHIND_PROXY": "1"}, True),
        # Configuring nginx's client-address header makes the same promise.
        ({"STOREFRONT_PROXY_CLIENT_IP_HEADER": "X-Real-IP"}, True),
        (
            {"STOREFRONT_PROXY_CLIENT_IP_HEADER": "X-Real-IP", "STOREFRONT_BEHIND_PROXY": "0"},
            False,
        ),
    ],
)
def test_forwarded_proto_is_believed_only_behind_the_proxy(
    tmp_path: Path, proxy_env: dict[str, str], secure: bool
) -> None:
    """A client reaching the app directly cannot claim HTTPS (secure cookies, HTTPS links,
    HSTS, the HTTPS redirect all follow request.is_secure())."""
    done = run_python(tmp_path, IS_SECURE, **PRODUCTION, **proxy_env)
    assert done.returncode == 0, done.stderr
    scheme = "https" if secure else "http"
    assert done.stdout.split() == [str(secure), f"{scheme}://shop.example.com/"]


@pytest.mark.parametrize("env", [{"STOREFRONT_ENV": "dev"}, PRODUCTION])
def test_hsts_defaults_are_the_ones_nginx_is_rendered_with(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """One setting: the renderer's NGINX_HSTS_* defaults are Django's, so nginx sends the
    header Django sends for the same environment."""
    seconds, preload = setting(
        tmp_path, "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_PRELOAD", **env
    ).split()
    rendered = render_nginx.hsts_values(env)
    assert rendered["NGINX_HSTS_MAX_AGE"] == seconds == "31536000"
    assert (rendered["NGINX_HSTS_PRELOAD"] == "true") == (preload == "True")
    # An explicit value reaches both.
    explicit = {**env, "SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_PRELOAD": "false"}
    assert setting(tmp_path, "s.SECURE_HSTS_SECONDS", **explicit) == "600"
    assert render_nginx.hsts_values(explicit) == {
        "NGINX_HSTS_MAX_AGE": "600",
        "NGINX_HSTS_PRELOAD": "false",
    }


def test_compose_renders_nginx_hsts_from_the_django_variables(tmp_path: Path) -> None:
    compose = yaml.safe_load((REPO / "deploy" / "docker" / "compose.yaml").read_text())
    nginx = compose["services"]["nginx"]["environment"]
    seconds = setting(tmp_path, "s.SECURE_HSTS_SECONDS", **PRODUCTION)
    preload = setting(tmp_path, "s.SECURE_HSTS_PRELOAD", **PRODUCTION)
    # Same variable as web reads from .env, and without it the production default.
    assert nginx["NGINX_HSTS_MAX_AGE"] == f"${{SECURE_HSTS_SECONDS:-{seconds}}}"
    assert nginx["NGINX_HSTS_PRELOAD"] == f"${{SECURE_HSTS_PRELOAD:-{preload.lower()}}}"


def test_renderer_refuses_a_max_age_that_is_no_number(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="SECURE_HSTS_SECONDS"):
        render_nginx.render(tmp_path, {"SECURE_HSTS_SECONDS": "1y"})
