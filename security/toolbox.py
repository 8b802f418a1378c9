"""Where the scanners are: .venv-security (scripts/security_tools.sh), the project's venv or
PATH. They run with harness.run (from the repository, output captured)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SECURITY_VENV = Path(os.environ.get("SECURITY_VENV", REPO_ROOT / ".venv-security"))
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A scanner from .venv-security, else the project's venv, else PATH."""
    for directory in (SECURITY_VENV / "bin", VENV_BIN):
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run scripts/security_tools.sh")
    return found
