"""Code run the way a deployment starts it: a fresh interpreter in this checkout whose environment
is exactly PATH, a throwaway STOREFRONT_VAR_DIR and what the case sets, so settings.py reads
nothing from the test process (which has already imported its own settings).

Used by the tests of settings that are decided at import time: production refusals, security
knobs, logging format, Sentry, profilers, `check --deploy`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The smallest environment settings.py accepts as production.
PRODUCTION = {
    "STOREFRONT_ENV": "production",
    "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-0123456789",
    "ALLOWED_HOSTS": "shop.example.com",
}

_SETUP = "import django\ndjango.setup()\n"


def run_python(
    var_dir: Path, code: str, *, setup_django: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -c code` (after `django.setup()` with storefront.settings if `setup_django`)."""
    script = textwrap.dedent(code)
    if setup_django:
        env = {"DJANGO_SETTINGS_MODULE": "storefront.settings", **env}
        script = _SETUP + script
    return run_argv(var_dir, ["-c", script], **env)


def run_argv(var_dir: Path, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """`python *argv` in the checkout with only PATH, STOREFRONT_VAR_DIR=var_dir and `env`."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STOREFRONT_VAR_DIR": str(var_dir)}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def setting(var_dir: Path, expression: str, **env: str) -> str:
    """What `expression` (over `s`, the settings module) prints under `env`."""
    done = run_python(var_dir, f"import storefront.settings as s; print({expression})", **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def last_error(done: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line of a run that must have failed (the exception it stopped on)."""
    assert done.returncode != 0, done.stdout
    return done.stderr.strip().splitlines()[-1]
