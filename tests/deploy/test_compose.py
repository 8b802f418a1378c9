"""Wiring of deploy/docker/compose.yaml, checked by parsing it (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _depends(service: dict[str, Any]) -> dict[str, Any]:
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must be the long form with conditions"
    return depends


def _volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Named-volume or bind source -> (target, mode) for every short-form volume entry."""
    mounts = {}
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        mounts[parts[0]] = (parts[1], mode)
    return mounts


def test_expected_services(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == {"nginx", "web", "postgres", "redis", "memcached"}


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"


def test_web_waits_for_healthy_backends(compose: dict[str, Any]) -> None:
    depends = _depends(_services(compose)["web"])
    for backend in ("postgres", "redis", "memcached"):
        assert depends[backend] == {"condition": "service_healthy"}


def test_nginx_waits_for_healthy_web(compose: dict[str, Any]) -> None:
    assert _depends(_services(compose)["nginx"])["web"] == {"condition": "service_healthy"}


def test_web_healthcheck_probes_healthz(compose: dict[str, Any]) -> None:
    test = _services(compose)["web"]["healthcheck"]["test"]
    assert "http://127.0.0.1:8000/healthz" in " ".join(test)


def test_web_can_scale(compose: dict[str, Any]) -> None:
    web = _services(compose)["web"]
    assert "container_name" not in web
    assert "ports" not in web  # a fixed host port would collide with --scale web=3
    assert web["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"


def test_static_volume_shared_read_only_in_nginx(compose: dict[str, Any]) -> None:
    services = _services(compose)
    web, nginx = _volume_mounts(services["web"]), _volume_mounts(services["nginx"])
    for volume in ("static", "media"):
        assert volume in compose["volumes"]
        assert web[volume][1] == "rw"
        assert nginx[volume] == (web[volume][0], "ro")
    assert services["web"]["environment"]["STATIC_ROOT"] == web["static"][0]
    assert "postgres-data" in _volume_mounts(services["postgres"])


def test_nginx_renders_the_shared_templates(compose: dict[str, Any]) -> None:
    nginx = _services(compose)["nginx"]
    target, mode = _volume_mounts(nginx)["../nginx/templates"]
    assert (target, mode) == ("/etc/nginx/templates", "ro")
    environment = nginx["environment"]
    assert environment["NGINX_UPSTREAMS"] == "server web:8000;"
    assert environment["NGINX_STATIC_ROOT"] == _volume_mounts(nginx)["static"][0]
    assert environment["NGINX_MEDIA_ROOT"] == _volume_mounts(nginx)["media"][0]


def test_app_services_read_the_env_file(compose: dict[str, Any]) -> None:
    for name in ("web", "nginx"):
        assert _services(compose)[name]["env_file"] == ".env"
    assert (DOCKER_DIR / "env.example").is_file()


def test_nginx_template_variables_are_all_set(compose: dict[str, Any]) -> None:
    templates = sorted((DOCKER_DIR / "../nginx/templates").rglob("*.template"))
    if not templates:
        pytest.skip("deploy/nginx/templates/*.template not in this checkout yet")
    used = set(re.findall(r"\$\{(NGINX_[A-Z_]+)\}", "".join(p.read_text() for p in templates)))
    # Each one is fixed by compose or chosen per site in env.example.
    missing = used - set(_services(compose)["nginx"]["environment"]) - _documented()
    assert not missing, f"set these for the nginx service: {sorted(missing)}"


def _documented() -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in (DOCKER_DIR / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }


def test_env_example_documents_what_the_stack_reads(compose: dict[str, Any]) -> None:
    documented = _documented()
    required = {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "STOREFRONT_ENV", "REDIS_URL"}
    required |= {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "NGINX_HTTP_PORT"}
    assert required <= documented


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        assert any(ch.isdigit() for ch in tag), f"{name}: tag {tag!r} names no version"


def test_web_builds_the_repo_dockerfile(compose: dict[str, Any]) -> None:
    build = _services(compose)["web"]["build"]
    context = (DOCKER_DIR / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / ".dockerignore").is_file()


def test_every_snippet_nginx_includes_exists_in_the_container(compose: dict[str, Any]) -> None:
    """The official image renders templates only; the brotli snippets our renderer writes for
    local runs must come from a mount, or nginx would not start."""
    templates = DOCKER_DIR.parent / "nginx" / "templates"
    included = set()
    for template in templates.rglob("*.template"):
        included |= set(
            re.findall(r"include \$\{NGINX_SNIPPET_DIR\}/([\w.${}-]+)", template.read_text())
        )
    rendered = {
        p.name.removesuffix(".template") for p in (templates / "snippets").glob("*.template")
    }
    nginx = _services(compose)["nginx"]
    snippet_dir = nginx["environment"]["NGINX_SNIPPET_DIR"]
    mounted = {}
    for volume in nginx["volumes"]:
        source, target = volume.split(":")[:2]
        if target.startswith(snippet_dir + "/"):
            mounted[target.rsplit("/", 1)[1]] = DOCKER_DIR / source
    profile_files = {f"http-{p}.conf" for p in ("dev", "production")}
    missing = {
        name
        for name in included
        if "${" not in name and name not in rendered and name not in mounted
    }
    assert not missing
    assert {"brotli.conf", "brotli-static.conf"} <= set(mounted)
    assert all(path.is_file() for path in mounted.values())
    assert profile_files <= rendered


def test_nginx_healthcheck_uses_the_plain_http_probe(compose: dict[str, Any]) -> None:
    test = " ".join(_services(compose)["nginx"]["healthcheck"]["test"])
    assert "http://127.0.0.1/nginx-healthz" in test
