"""The lockout and API token knobs as a deployment sets them: settings.py imported in a fresh
interpreter with the given environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fresh_python import run_python

SHOW = (
    "import storefront.settings as s; "
    "print(s.AXES_FAILURE_LIMIT, s.STOREFRONT_LOCKOUT_ADDRESS_FAILURES, s.AXES_COOLOFF_TIME, "
    's.REST_KNOX["TOKEN_TTL"])'
)


def settings_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python(tmp_path, SHOW, **env)


def test_defaults(tmp_path: Path) -> None:
    shown = settings_with(tmp_path)

    assert shown.stdout.strip() == "5 20 0:15:00 30 days, 0:00:00", shown.stderr


def test_every_knob_comes_from_the_environment(tmp_path: Path) -> None:
    shown = settings_with(
        tmp_path,
        STOREFRONT_LOCKOUT_FAILURES="3",
        STOREFRONT_LOCKOUT_ADDRESS_FAILURES="50",
        STOREFRONT_LOCKOUT_MINUTES="60",
        STOREFRONT_API_TOKEN_TTL_HOURS="12",
    )

    assert shown.stdout.strip() == "3 50 1:00:00 12:00:00", shown.stderr


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("STOREFRONT_LOCKOUT_MINUTES", "STOREFRONT_LOCKOUT_MINUTES, STOREFRONT_LOCKOUT_FAILURES"),
        ("STOREFRONT_LOCKOUT_ADDRESS_FAILURES", "must be at least 1"),
        ("STOREFRONT_API_TOKEN_TTL_HOURS", "STOREFRONT_API_TOKEN_TTL_HOURS must be at least 1"),
    ],
)
def test_zero_is_refused_with_a_message(tmp_path: Path, variable: str, message: str) -> None:
    shown = settings_with(tmp_path, **{variable: "0"})

    assert shown.returncode != 0
    assert message in shown.stderr
