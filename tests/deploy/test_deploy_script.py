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

from storefront.ops.errors import release_name

REPO = Path(__file__).resolve().parents[2]
DEPLOY_SCRIPT = REPO / "deploy" / "scripts" / "deploy.sh"
UNIT_DIR = REPO / "deploy" / "systemd"
LIVE_ROOT = "/opt/storefront"

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


def _unit_environment(unit: str, root: Path) -> dict[str, str]:
    """What systemd would hand `unit` from its EnvironmentFile= lines, in order (a later file
    wins), with /opt/storefront standing for `root`; a "-" file may be missing."""
    environment: dict[str, str] = {}
    for line in (UNIT_DIR / unit).read_text().splitlines():
        if not line.startswith("EnvironmentFile="):
            continue
        path = line.removeprefix("EnvironmentFile=")
        optional = path.startswith("-")
        path = path.removeprefix("-")
        if path.startswith(f"{LIVE_ROOT}/"):
            path = str(root) + path.removeprefix(LIVE_ROOT)
        elif path == "/etc/storefront/env":
            path = str(root.parent / "env")  # the test's DEPLOY_ENV_FILE
        if optional and not Path(path).exists():
            continue
        for assignment in Path(path).read_text().splitlines():
            if assignment and not assignment.startswith("#") and "=" in assignment:
                name, value = assignment.split("=", 1)
                environment[name] = value
    return environment


def _sentry_release(root: Path) -> set[str]:
    """The release every unit's Sentry events get (storefront/ops/errors.py), one per unit."""
    return {release_name(_unit_environment(unit.name, root)) for unit in UNIT_DIR.glob("*.service")}


def _source_commit() -> str:
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    changes = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    )
    return commit.stdout.strip() + ("-dirty" if changes.stdout.strip() else "")


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
    # The checkout's commit (an export without .git: the release name) is the release id
    # every unit tags its Sentry events with.
    release_id = _source_commit() if (REPO / ".git").exists() else "20260101000000"
    assert (release / "release.env").read_text().splitlines()[1:] == [
        f"STOREFRONT_RELEASE={release_id}"
    ]
    assert _sentry_release(deploy_root) == {release_id}
    assert f"release id (STOREFRONT_RELEASE): {release_id}" in result.stderr


def test_release_id_without_git_is_the_release_name(
    deploy_root: Path, readyz: ReadyzServer
) -> None:
    """A source without .git (here: a release, which never holds one) names itself."""
    assert _deploy(deploy_root, readyz, "20260101000000").returncode == 0
    first = deploy_root / "releases" / "20260101000000"
    assert not (first / ".git").exists()
    result = _deploy(deploy_root, readyz, "20260102000000", DEPLOY_SOURCE=str(first))
    assert result.returncode == 0, result.stderr
    assert _sentry_release(deploy_root) == {"20260102000000"}


def test_refuses_a_release_id_sentry_would_refuse(deploy_root: Path, readyz: ReadyzServer) -> None:
    result = _deploy(deploy_root, readyz, "20260101000000", DEPLOY_RELEASE_ID="v1/2 beta")
    assert result.returncode == 1
    assert "bad DEPLOY_RELEASE_ID 'v1/2 beta'" in result.stderr
    assert not (deploy_root / "releases" / "20260101000000").exists()
    assert _reloads(deploy_root) == []


def test_failed_health_gate_rolls_back(deploy_root: Path, readyz: ReadyzServer) -> None:
    first = _deploy(deploy_root, readyz, "20260101000000", DEPLOY_RELEASE_ID="storefront@1.0")
    assert first.returncode == 0
    good = str(deploy_root / "releases" / "20260101000000")
    assert _sentry_release(deploy_root) == {"storefront@1.0"}

    readyz.status = 503
    readyz.probes = 0
    result = _deploy(deploy_root, readyz, "20260102000000", DEPLOY_RELEASE_ID="storefront@1.1")

    bad = str(deploy_root / "releases" / "20260102000000")
    assert result.returncode == 1
    assert os.readlink(deploy_root / "current") == good
    # first deploy, the switch to the bad release, the switch back
    assert _reloads(deploy_root) == [good, bad, good]
    assert readyz.probes == 3  # DEPLOY_HEALTH_RETRIES, then no more
    assert f"rolled back to {good}" in result.stderr
    assert Path(bad).is_dir()  # kept for inspection
    # The units are back on the good release's id, along with its code.
    assert (Path(bad) / "release.env").read_text().endswith("STOREFRONT_RELEASE=storefront@1.1\n")
    assert _sentry_release(deploy_root) == {"storefront@1.0"}


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
