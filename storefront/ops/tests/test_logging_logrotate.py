"""deploy/logrotate/storefront: logrotate accepts it, and it rotates what it names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import skip_or_fail

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "logrotate" / "storefront"


@pytest.fixture
def logrotate() -> str:
    binary = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None
    )
    if binary is None:
        skip_or_fail("logrotate not installed (apt-get install logrotate)")
    return binary


def test_logrotate_accepts_the_config(logrotate: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [logrotate, "--debug", "--state", str(tmp_path / "state"), str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "error" not in output.lower(), output
    assert "rotating pattern: /var/log/nginx/storefront/*.log" in output
    assert "rotating pattern: /var/log/storefront/*.log" in output


def test_it_rotates_nginx_and_app_files(logrotate: str, tmp_path: Path) -> None:
    """The same rules on a copy of the layout under tmp_path, forced to rotate now."""
    nginx_dir, app_dir = tmp_path / "nginx", tmp_path / "app"
    nginx_dir.mkdir()
    app_dir.mkdir()
    config = (
        CONFIG.read_text()
        .replace("/var/log/nginx/storefront/", f"{nginx_dir}/")
        .replace("/var/log/storefront/", f"{app_dir}/")
        .replace("/run/nginx.pid", str(tmp_path / "nginx.pid"))
    )
    (tmp_path / "logrotate.conf").write_text(config)
    (nginx_dir / "access.log").write_text('{"status":200}\n')
    (app_dir / "web.log").write_text('{"message":"hello"}\n')

    done = subprocess.run(
        [
            logrotate,
            "--force",
            "--state",
            str(tmp_path / "state"),
            str(tmp_path / "logrotate.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    # nginx's file: moved aside (uncompressed until the next rotation), a new empty one created.
    [rotated] = nginx_dir.glob("access.log-*")
    assert rotated.read_text() == '{"status":200}\n'
    assert (nginx_dir / "access.log").read_text() == ""
    # The app's file: copied, then truncated in place (the process keeps writing to it).
    [copied] = app_dir.glob("web.log-*")
    assert copied.read_text() == '{"message":"hello"}\n'
    assert (app_dir / "web.log").read_text() == ""
