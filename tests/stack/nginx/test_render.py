"""The rendered nginx configuration itself: gixy finds nothing, bad values are refused, and the
renderer agrees with the official image's envsubst."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_or_fail
from tests.stack.nginx.helpers import render_nginx

pytestmark = pytest.mark.stack


@pytest.mark.parametrize(
    ("profile", "microcache"), [("dev", "on"), ("production", "on"), ("dev", "off")]
)
def test_gixy_finds_nothing(profile: str, microcache: str, tmp_path: Path) -> None:
    gixy = Path(sys.executable).with_name("gixy")
    if not gixy.exists():
        skip_or_fail("gixy not installed (pip install gixy-ng)")
    render_nginx.render(tmp_path, {"NGINX_MICROCACHE": microcache}, profile)
    done = subprocess.run([str(gixy), str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Problem:" not in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NGINX_MICROCACHE", "yes"),
        ("NGINX_MICROCACHE_SECONDS", "1 s"),
        ("NGINX_MICROCACHE_SECONDS", "0"),
    ],
)
def test_renderer_refuses_bad_microcache_values(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=name):
        render_nginx.render(tmp_path, {name: value})


@pytest.mark.parametrize("profile", ["dev", "production"])
def test_renderer_matches_envsubst(profile: str, tmp_path: Path) -> None:
    """The official image renders the templates with envsubst: both must agree byte for byte."""
    envsubst = shutil.which("envsubst")
    if not envsubst:
        skip_or_fail("envsubst not installed (apt-get install gettext-base)")
    values = render_nginx.render(tmp_path, {}, profile)
    shell_format = " ".join(f"${{{name}}}" for name in values)
    env = {**os.environ, **values}
    for template in (render_nginx.NGINX_DIR / "templates").rglob("*.template"):
        relative = template.relative_to(render_nginx.NGINX_DIR / "templates").with_suffix("")
        ours = tmp_path / ("conf.d" if relative.parent == Path(".") else "") / relative
        theirs = subprocess.run(
            [envsubst, shell_format],
            input=template.read_text(),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert ours.read_text() == theirs, template.name


def test_backend_is_the_pool_by_default_and_a_resolved_name_needs_a_resolver(
    tmp_path: Path,
) -> None:
    """proxy_pass names $storefront_backend: the upstream group (fixed addresses, keepalive),
    or a host:port looked up at request time, which only works with a resolver."""
    render_nginx.render(tmp_path / "pool", {})
    conf = (tmp_path / "pool" / "conf.d" / "storefront.conf").read_text()
    assert "default storefront_app;" in conf
    assert "\nresolver " not in conf
    app = (tmp_path / "pool" / "snippets" / "app.conf").read_text()
    assert "proxy_pass http://storefront_app" not in app
    assert app.count("proxy_pass http://$storefront_backend;") >= 7

    with pytest.raises(SystemExit, match="set NGINX_RESOLVER"):
        render_nginx.render(tmp_path / "bare", {"NGINX_BACKEND": "web:8000"})
    with pytest.raises(SystemExit, match="NGINX_BACKEND must be"):
        render_nginx.render(tmp_path / "bad", {"NGINX_BACKEND": "http://web:8000/"})

    resolver = "resolver 127.0.0.53 valid=2s ipv6=off;"
    render_nginx.render(tmp_path / "named", {"NGINX_BACKEND": "localhost:8000",
                                              "NGINX_RESOLVER": resolver})  # fmt: skip
    conf = (tmp_path / "named" / "conf.d" / "storefront.conf").read_text()
    assert "default localhost:8000;" in conf
    assert f"\n{resolver}\n" in conf
