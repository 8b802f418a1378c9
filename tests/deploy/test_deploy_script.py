"""deploy/scripts/deploy.sh in a temporary root: a release that passes the health gate, and one
that fails it and is rolled back. The reload command records where `current` pointed when it ran;
the health gate probes a small local HTTP server whose answer each test chooses.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY_SCRIPT = REPO / "deploy" / "scripts" / "deploy.sh"

pytestmark = pytest.mark.stack


class ReadyzServer:
    """Answers GET /readyz with `status`, counting the probes."""

    def __init__(self) -> None:
        self.status = 200
        self.probes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.probes += 1
                code = outer.status if self.path == "/readyz" else 404
                body = b'{"status": "ok"}' if code == 200 else b'{"status": "unavailable"}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/readyz"


@pytest.fixture
def readyz() -> Iterator[ReadyzServer]:
    server = ReadyzServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def deploy_root(tmp_path: Path) -> Path:
    root = tmp_path / "opt"
    root.mkdir()
    (tmp_path / "env").write_text(
        f"DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite3'}\n"
        f"STOREFRONT_VAR_DIR={tmp_path / 'var'}\n"
        f"STATIC_ROOT={tmp_path / 'static'}\n"
        "STATICFILES_STORAGE=django.contrib.staticfiles.storage.StaticFilesStorage\n"
    )
    return root


def _deploy(
    root: Path, readyz: ReadyzServer, release: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STOREFRONT_", "DATABASE_", "REDIS_", "DJANGO_", "CELERY_"))
    }
    env.update(
        DEPLOY_ROOT=str(root),
        DEPLOY_SOURCE=str(REPO),
        DEPLOY_RELEASE_NAME=release,
        DEPLOY_ENV_FILE=str(root.parent / "env"),
        DEPLOY_VENV=sys.prefix,
        DEPLOY_RELOAD_CMD=f'readlink "{root}/current" >> "{root.parent}/reloads.log"',
        DEPLOY_HEALTH_URL=readyz.url,
        DEPLOY_HEALTH_SOCKET="",
        DEPLOY_HEALTH_RETRIES="3",
        DEPLOY_HEALTH_INTERVAL="0.1",
    )
    env.update(extra)
    return subprocess.run(
        [str(DEPLOY_SCRIPT)], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _reloads(root: Path) -> list[str]:
    log = root.parent / "reloads.log"
    return log.read_text().splitlines() if log.exists() else []


def test_release_passes_the_health_gate(deploy_root: Path, readyz: ReadyzServer) -> None:
    result = _deploy(deploy_root, readyz, "20260101000000")
    assert result.returncode == 0, result.stderr
    release = deploy_root / "releases" / "20260101000000"
    assert os.readlink(deploy_root / "current") == str(release)
    assert (release / "deploy" / "gunicorn.conf.py").is_file()
    assert not (release / ".git").exists() and not (release / "var").exists()
    assert os.readlink(release / ".venv") == sys.prefix
    assert _reloads(deploy_root) == [str(release)]  # reloaded once, after the switch
    assert readyz.probes == 1
    assert (deploy_root.parent / "static" / "admin").is_dir()  # collectstatic ran
    with sqlite3.connect(deploy_root.parent / "db.sqlite3") as connection:
        applied = connection.execute("select count(*) from django_migrations").fetchone()[0]
    assert applied > 0  # migrate ran
    assert "gunicorn --check-config" in result.stderr
    assert "released 20260101000000" in result.stderr


def test_failed_health_gate_rolls_back(deploy_root: Path, readyz: ReadyzServer) -> None:
    assert _deploy(deploy_root, readyz, "20260101000000").returncode == 0
    good = str(deploy_root / "releases" / "20260101000000")

    readyz.status = 503
    readyz.probes = 0
    result = _deploy(deploy_root, readyz, "20260102000000")

    bad = str(deploy_root / "releases" / "20260102000000")
    assert result.returncode == 1
    assert os.readlink(deploy_root / "current") == good
    # first deploy, the switch to the bad release, the switch back
    assert _reloads(deploy_root) == [good, bad, good]
    assert readyz.probes == 3  # DEPLOY_HEALTH_RETRIES, then no more
    assert f"rolled back to {good}" in result.stderr
    assert Path(bad).is_dir()  # kept for inspection


def test_refuses_a_release_name_that_exists(deploy_root: Path, readyz: ReadyzServer) -> None:
    assert _deploy(deploy_root, readyz, "20260101000000").returncode == 0
    result = _deploy(deploy_root, readyz, "20260101000000")
    assert result.returncode == 1
    assert "exists already" in result.stderr
    assert _reloads(deploy_root) == [str(deploy_root / "releases" / "20260101000000")]


def test_old_releases_are_pruned(deploy_root: Path, readyz: ReadyzServer) -> None:
    names = ["20260101000000", "20260102000000", "20260103000000"]
    for name in names:
        result = _deploy(deploy_root, readyz, name, DEPLOY_KEEP_RELEASES="2")
        assert result.returncode == 0, result.stderr
    kept = sorted(path.name for path in (deploy_root / "releases").iterdir())
    assert kept == names[1:]
    assert f"removing old release {deploy_root / 'releases' / names[0]}" in result.stderr
