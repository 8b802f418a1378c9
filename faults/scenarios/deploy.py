"""deploy/scripts/deploy.sh under load: a release with a migration, then one whose health gate
fails and is rolled back.

deploy.sh runs as written, against the stack: the release is a copy of this checkout plus one
migration (a table of its own, so the running release is unaffected, as deploy.sh asks of
migrations), its environment file holds the stack's settings, and its health gate probes
/readyz through nginx. Two things stand in for the systemd server it targets: the reload
command is a graceful reload of both gunicorn instances (SIGHUP to each master, one after the
other) instead of `systemctl restart storefront.service` behind socket activation, and the
instances keep serving the code they preloaded (a reload re-reads the configuration and
replaces every worker; loading a new release's code needs the restart systemd does).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faults.load import OpenLoopLoad
from faults.report import ScenarioResult, Target
from faults.scenarios.common import no_failures_target, under_load
from faults.stack import FaultStack
from harness import REPO_ROOT

DEPLOY_SCRIPT = REPO_ROOT / "deploy" / "scripts" / "deploy.sh"
MIGRATION = '''"""Added by make faults' deploy scenario: a migration the release brings along."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("orders", "{latest}")]

    operations = [
        migrations.RunSQL(
            "CREATE TABLE IF NOT EXISTS faults_release_marker (id serial PRIMARY KEY)",
            "DROP TABLE IF EXISTS faults_release_marker",
        )
    ]
'''
# What the release's environment file carries over from the stack's environment.
ENV_KEYS = (
    "DATABASE_URL", "REDIS_URL", "STOREFRONT_VAR_DIR", "STATIC_ROOT", "MEDIA_ROOT",
    "PRIVATE_MEDIA_ROOT", "STOREFRONT_CACHE_KEY_PREFIX", "STOREFRONT_ENV", "CELERY_QUEUE",
    "EMAIL_URL", "STOREFRONT_METRICS_DIR",
)  # fmt: skip


def _source_with_migration(workdir: Path) -> Path:
    """A copy of the checkout (what deploy.sh would copy) with one more orders migration."""
    source = workdir / "release-source"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "var", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache",
        "*.egg-info", "test-output",
    )  # fmt: skip
    shutil.copytree(REPO_ROOT, source, ignore=ignore, symlinks=True)
    migrations = source / "storefront" / "orders" / "migrations"
    latest = sorted(p.stem for p in migrations.glob("0*.py"))[-1]
    (migrations / "9000_faults_release_marker.py").write_text(MIGRATION.format(latest=latest))
    return source


def _deploy(stack: FaultStack, root: Path, source: Path, name: str, health_path: str) -> dict:
    env_file = root.parent / "env"
    # The virtualenv (DEPLOY_VENV) has Storefront installed from this checkout in editable
    # mode: the release's own code (its new migration) comes first on the path instead, as a
    # virtualenv built from the release (deploy.sh's default) would have it.
    release = root / "releases" / name
    env_file.write_text(
        "".join(f"{k}={shlex.quote(stack.env[k])}\n" for k in ENV_KEYS if k in stack.env)
        + f"PYTHONPATH={shlex.quote(str(release))}\n"
    )
    reload = " && ".join(f"kill -HUP {w.master_pid} && sleep 2" for w in stack.web)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STOREFRONT_", "DATABASE_", "REDIS_", "DJANGO_", "CELERY_"))
    }
    env.update(
        DEPLOY_ROOT=str(root),
        DEPLOY_SOURCE=str(source),
        DEPLOY_RELEASE_NAME=name,
        DEPLOY_RELEASE_ID=f"faults-{name}",
        DEPLOY_ENV_FILE=str(env_file),
        DEPLOY_VENV=sys.prefix,
        DEPLOY_RELOAD_CMD=reload,
        DEPLOY_HEALTH_URL=f"{stack.url}{health_path}",
        DEPLOY_HEALTH_SOCKET="",
        DEPLOY_HEALTH_RETRIES="3",
        DEPLOY_HEALTH_INTERVAL="1",
    )
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(DEPLOY_SCRIPT)], env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    current = root / "current"
    return {
        "exit": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "current": os.readlink(current) if current.is_symlink() else None,
        "log": done.stderr[-1500:],
    }


def _migrated(stack: FaultStack) -> bool:
    import psycopg

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass('faults_release_marker')").fetchone()[0] is not None


def deploy(stack: FaultStack, result: ScenarioResult) -> None:
    """Release 1 (with its migration) under 200 req/s, then release 2 whose health gate fails
    (it probes an address that answers 404, standing in for a release that does not come up):
    deploy.sh must roll back to release 1, and no request may fail throughout."""
    stack.ensure_web()
    workdir = Path(tempfile.mkdtemp(prefix="sf-faults-deploy-"))
    root = workdir / "opt"
    root.mkdir()
    source = _source_with_migration(workdir)
    outcome: dict = {}
    try:

        def fault(load: OpenLoopLoad) -> dict:
            outcome["first"] = _deploy(stack, root, source, "release-1", "/readyz")
            time.sleep(2)
            outcome["second"] = _deploy(stack, root, source, "release-2", "/_faults/no-such-page")
            return {}

        run = under_load(stack, fault, max_seconds=400)
        first, second = outcome.get("first", {}), outcome.get("second", {})
        result.phases = run.phases
        result.facts["release 1 (migration, gate /readyz)"] = (
            f"exit {first.get('exit')} in {first.get('seconds')} s, current → "
            f"{Path(first.get('current') or '-').name}"
        )
        result.facts["release 2 (gate fails)"] = (
            f"exit {second.get('exit')} in {second.get('seconds')} s, current → "
            f"{Path(second.get('current') or '-').name}"
        )
        result.add(Target.equal("release 1 deployed (exit status)", first.get("exit"), 0))
        result.add(Target.true("its migration ran", _migrated(stack)))
        result.add(Target.equal("release 2 refused (exit status)", second.get("exit"), 1))
        result.add(
            Target.equal(
                "rolled back to release 1",
                Path(second.get("current") or "-").name,
                "release-1",
            )
        )
        no_failures_target(result, run)
        if first.get("exit") != 0 or second.get("exit") != 1:
            result.notes.append(f"deploy.sh said: {first.get('log')} / {second.get('log')}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
