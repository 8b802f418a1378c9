"""Where the processes of a host write their Prometheus metrics (no Django: gunicorn's config
imports it before the app loads).

One root directory (STOREFRONT_METRICS_DIR, default $STOREFRONT_VAR_DIR/metrics) holds one
subdirectory per process group: a gunicorn master and its workers, or a Celery worker and its
pool. A group empties its own subdirectory when it starts (gunicorn's on_starting hook, Celery's
worker_init), so restarting one group never touches another's counters; /metrics adds up every
subdirectory, so any web process answers for the whole host (or the shared volume).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path


def metrics_root(var_dir: str | os.PathLike[str] | None = None) -> Path:
    """STOREFRONT_METRICS_DIR, else <var dir>/metrics (STOREFRONT_VAR_DIR, else ./var)."""
    explicit = os.environ.get("STOREFRONT_METRICS_DIR")
    if explicit:
        return Path(explicit)
    var = var_dir or os.environ.get("STOREFRONT_VAR_DIR") or Path(__file__).parents[2] / "var"
    return Path(var) / "metrics"


def group_name(role: str) -> str:
    """STOREFRONT_METRICS_GROUP, else `<role>-<hostname>` (unique per container in compose)."""
    return os.environ.get("STOREFRONT_METRICS_GROUP") or f"{role}-{socket.gethostname()}"


def use_group_dir(root: Path, group: str, *, wipe: bool) -> Path:
    """Point prometheus_client (PROMETHEUS_MULTIPROC_DIR) at root/group, emptied when `wipe`
    (only the process that starts the group does)."""
    path = root / group
    if wipe:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[AUTO_MARKER] = str(path)
    return path


# Names the directory use_group_dir chose, so that a child process (an xdist worker, a Celery
# worker started by a test) tells an inherited choice from one given on purpose.
AUTO_MARKER = "STOREFRONT_METRICS_AUTO_DIR"


def given_multiproc_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR when set on purpose (not inherited from use_group_dir), else ""."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return "" if given == os.environ.get(AUTO_MARKER) else given
