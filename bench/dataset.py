# ruff: noqa: E501
"""The seeded datasets: a migrated template database cloned and seeded once per size, the
servers started on one, and the in-process measurements run against it (bench/inproc.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from modes import MODES

import harness
from harness import Database, log

BENCH_DIR = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# nginx's per-address limits during the measurements (see start_nginx).
THROUGHPUT_LIMITS = {
    "NGINX_RATE_GENERAL": "100000r/s",
    "NGINX_RATE_API": "100000r/s",
    "NGINX_CONN_PER_IP": "10000",
}


class Dataset:
    def __init__(self, label: str, db: Database, env: dict[str, str], workdir: Path) -> None:
        self.label = label
        self.db = db
        self.env = env
        self.workdir = workdir
        self.counts: dict = {}


def start_pair(
    ds: Dataset, name: str, *, microcache: str = "off", **gunicorn
) -> tuple[harness.Server, harness.Server]:
    """gunicorn (GUNICORN_* from the arguments) with nginx in front of it."""
    g = harness.serve_gunicorn(ds.env, ds.workdir / f"{name}-gunicorn.log", **gunicorn)
    try:
        n = start_nginx(ds, g, name, microcache)
    except BaseException:
        g.stop()
        raise
    return g, n


def start_nginx(ds: Dataset, g: harness.Server, name: str, microcache: str) -> harness.Server:
    """nginx in front of `g`. The per-address rate and connection limits are raised far above
    what wrk sends (every request comes from 127.0.0.1): the benchmark measures throughput, not
    the limiter, which would otherwise answer 429 to nearly everything."""
    return harness.start_nginx(
        ds.workdir / f"nginx-{name}",
        [g.netloc],
        static_root=Path(ds.env["STATIC_ROOT"]),
        media_root=Path(ds.env["MEDIA_ROOT"]),
        variables={**THROUGHPUT_LIMITS, "NGINX_MICROCACHE": microcache},
    )


def static_path(static_root: Path) -> str:
    """A small hashed static file (the site's stylesheet) from the collectstatic manifest."""
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    return "/static/" + manifest["paths"]["css/site.css"]


def inproc(ds: Dataset, args: list[str], timeout: float = 900) -> dict:
    done = subprocess.run(
        [harness.PYTHON, str(BENCH_DIR / "inproc.py"), *args],
        cwd=harness.REPO_ROOT, env=ds.env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"inproc {args[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(mode: str, workdir: Path, run_id: str) -> tuple[list[Dataset], Database]:
    cfg = MODES[mode]
    static_root = workdir / "static"
    template = Database(f"bench_{run_id}_template").create()
    base_env = harness.app_env(
        database_url=template.url,
        var_dir=workdir / "var-template",
        static_root=static_root,
        redis_url=REDIS_URL if harness.redis_available(REDIS_URL) else None,
        cache_prefix=f"bench{run_id}t",
        settings_module="bench_settings",
        python_path=(BENCH_DIR,),
    )
    log("migrating a template database and collecting static files")
    harness.storefront_command(["migrate", "--noinput", "--verbosity", "0"], base_env)
    harness.storefront_command(["collectstatic", "--noinput", "--verbosity", "0"], base_env)
    datasets = []
    for label, products, orders, users in cfg["datasets"]:
        db = Database(f"bench_{run_id}_{label.lower()}")
        db.create(template=template.name)
        env = dict(base_env)
        env.update(
            DATABASE_URL=db.url,
            STOREFRONT_VAR_DIR=str(workdir / f"var-{label}"),
            MEDIA_ROOT=str(workdir / f"var-{label}" / "media"),
            PRIVATE_MEDIA_ROOT=str(workdir / f"var-{label}" / "private"),
            STOREFRONT_CACHE_KEY_PREFIX=f"bench{run_id}{label.lower()}",
        )
        ds = Dataset(label, db, env, workdir / f"run-{label}")
        ds.workdir.mkdir(parents=True, exist_ok=True)
        datasets.append(ds)
        started = time.monotonic()
        log(f"seeding {label}: {products:,} products, {orders:,} orders, {users:,} users")
        harness.seed(env, products=products, orders=orders, users=users)
        ds.counts = {
            "products": products,
            "orders": orders,
            "users": users,
            "seed_s": round(time.monotonic() - started, 1),
        }
    return datasets, template
