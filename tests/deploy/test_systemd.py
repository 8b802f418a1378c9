"""deploy/systemd units: `systemd-analyze verify` accepts them and the service is sandboxed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "deploy" / "systemd"
UNITS = (
    "storefront.socket",
    "storefront.service",
    "storefront-worker.service",
    "storefront-beat.service",
)
SERVICES = tuple(unit for unit in UNITS if unit.endswith(".service"))
# The units name the live release; verify checks that ExecStart exists, so the copies under
# test point at this checkout (whose .venv holds gunicorn) instead.
LIVE_RELEASE = "/opt/storefront/current"
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+)")
# The site's settings, then the live release's id (deploy.sh writes it; a later file wins).
ENVIRONMENT_FILES = ["/etc/storefront/env", f"-{LIVE_RELEASE}/release.env"]


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        skip_or_fail("needs systemd-analyze (Debian package systemd)")
    return path


def _units_pointing_at_checkout(tmp_path: Path) -> list[Path]:
    copies = []
    for name in UNITS:
        text = (UNIT_DIR / name).read_text()
        # The virtualenv running these tests stands in for the release's, this checkout for it.
        text = text.replace(f"{LIVE_RELEASE}/.venv", sys.prefix).replace(LIVE_RELEASE, str(REPO))
        copy = tmp_path / name
        copy.write_text(text)
        copies.append(copy)
    return copies


def _directives(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNIT_DIR / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_the_gunicorn_binary_the_test_substitutes_exists() -> None:
    assert (Path(sys.prefix) / "bin" / "gunicorn").is_file()
    assert f"{LIVE_RELEASE}/.venv/bin/gunicorn " in (UNIT_DIR / "storefront.service").read_text()


def test_units_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "verify", *map(str, _units_pointing_at_checkout(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", SERVICES)
def test_service_exposure_below_five(unit: str) -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(UNIT_DIR / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = EXPOSURE.search(result.stdout)
    assert match, result.stdout + result.stderr
    assert match.group(1) == unit
    assert float(match.group(2)) < 5.0, result.stdout


def test_service_is_socket_activated_gunicorn_with_notify() -> None:
    service, socket = _directives("storefront.service"), _directives("storefront.socket")
    assert service["Type"] == ["notify"]
    assert service["Requires"] == ["storefront.socket"]
    assert service["ExecStart"][0].split()[:3] == [
        f"{LIVE_RELEASE}/.venv/bin/gunicorn",
        "-c",
        f"{LIVE_RELEASE}/deploy/gunicorn.conf.py",
    ]
    assert service["ExecReload"] == ["/bin/kill -s HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["storefront"]
    assert service["EnvironmentFile"] == ENVIRONMENT_FILES
    assert socket["ListenStream"] == ["/run/storefront/gunicorn.sock"]


def test_celery_units_run_worker_and_beat_from_the_release() -> None:
    worker, beat = _directives("storefront-worker.service"), _directives("storefront-beat.service")
    assert worker["ExecStart"][0].split()[:4] == [
        f"{LIVE_RELEASE}/.venv/bin/celery",
        "-A",
        "storefront",
        "worker",
    ]
    assert beat["ExecStart"][0].split()[:4] == [
        f"{LIVE_RELEASE}/.venv/bin/celery",
        "-A",
        "storefront",
        "beat",
    ]
    # Beat keeps its schedule state in the writable state directory.
    assert "--schedule /var/lib/storefront/celerybeat-schedule" in beat["ExecStart"][0]
    for unit in (worker, beat):
        assert unit["Restart"] == ["on-failure"]
        assert unit["User"] == ["storefront"]
        assert unit["EnvironmentFile"] == ENVIRONMENT_FILES
        assert unit["KillSignal"] == ["SIGTERM"]  # Celery's warm shutdown
    # Running tasks may take up to the hard time limit (660 s) to finish on stop.
    assert int(worker["TimeoutStopSec"][0]) > 660


def _environment(unit: str) -> dict[str, str]:
    """The unit's own Environment= assignments (later lines win, as in systemd)."""
    assignments: dict[str, str] = {}
    for line in _directives(unit).get("Environment", []):
        for assignment in line.split():
            name, _, value = assignment.partition("=")
            assignments[name] = value
    return assignments


@pytest.mark.parametrize("unit", SERVICES)
def test_services_run_production_settings_unless_the_env_file_says_otherwise(unit: str) -> None:
    """Without STOREFRONT_ENV in /etc/storefront/env the units still run production; the env
    file can override it (EnvironmentFile= wins over Environment= in systemd)."""
    assert _environment(unit)["STOREFRONT_ENV"] == "production"
    assert _directives(unit)["EnvironmentFile"] == ENVIRONMENT_FILES


def test_web_service_trusts_the_proxy_only_nginx_reaches_it() -> None:
    assert _environment("storefront.service")["STOREFRONT_BEHIND_PROXY"] == "1"
    # The socket is the only way in, and only nginx's group may connect.
    socket = _directives("storefront.socket")
    assert socket["SocketMode"] == ["0660"] and socket["SocketGroup"] == ["www-data"]


@pytest.mark.parametrize("unit", SERVICES)
def test_service_sandbox_directives(unit: str) -> None:
    service = _directives(unit)
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectHome": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert "@system-service" in service["SystemCallFilter"]
    assert "/var/lib/storefront" in service["ReadWritePaths"][0].split()
    assert service["UMask"]
