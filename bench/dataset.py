# ruff: noqa: E501
"""The seeded datasets: a migrated template database cloned and seeded once per size, the
servers started on one, and the in-process measurements run against it (bench/inproc.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from modes import MODES

import harness
from harness import Database, log

BENCH_DIR = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# nginx's per-address limits during the measurements (see start_nginx): every request of the
# load generator comes from 127.0.0.1.
THROUGHPUT_LIMITS = {
    "NGINX_RATE_AUTH": "100000r/s",
    "NGINX_RATE_API": "100000r/s",
    "NGINX_RATE_GENERAL": "100000r/s",
    "NGINX_CONN_PER_IP": "10000",
}
# The limit_req bursts are fixed in deploy/nginx/templates/snippets/app.conf.template (40 for
# pages): with nginx's clock cached per event-loop turn, more than `burst` requests from one
# address within one millisecond are refused whatever the rate, which at tens of thousands of
# req/s from wrk means 429s. The bench's rendered copy gets this burst instead.
THROUGHPUT_BURST = 1_000_000
# "Uncached" stacks: Django's page cache stores nothing (with a timeout of 0 the page-cache
# wrapper skips its store, storefront/cache_pages.py), so every request renders the page and
# answers X-Storefront-Cache: MISS. The inner caches (category tree, counts, fragments) keep
# their production TTLs. See uncached_env: a key prefix of their own as well.
UNCACHED_ENV = {"STOREFRONT_CACHE_TTL_PAGES": "0"}


def raise_bursts(prefix: Path) -> list[str]:
    """Raise every limit_req burst of the rendered nginx in `prefix` to THROUGHPUT_BURST;
    returns the rewritten lines. RuntimeError when there is none (the template changed)."""
    changed: list[str] = []
    confs = [*sorted((prefix / "snippets").glob("*.conf")), prefix / "conf.d" / "storefront.conf"]
    for conf in confs:
        if not conf.exists():
            continue
        text = conf.read_text()
        new = re.sub(r"(limit_req\s+zone=\S+\s+)burst=\d+", rf"\g<1>burst={THROUGHPUT_BURST}", text)
        if new != text:
            changed += [line.strip() for line in new.splitlines() if "limit_req zone=" in line]
            conf.write_text(new)
    if not changed:
        raise RuntimeError(f"no limit_req burst found to raise under {prefix}")
    return changed


class Dataset:
    def __init__(self, label: str, db: Database, env: dict[str, str], workdir: Path) -> None:
        self.label = label
        self.db = db
        self.env = env
        self.workdir = workdir
        self.counts: dict = {}


def uncached_env(ds: Dataset) -> dict[str, str]:
    """The settings of an uncached stack on `ds`: UNCACHED_ENV, and a cache key prefix of its
    own, so that a page the production stack stored (same database, same Redis) can never be
    found by it; its sessions are still valid there (cached_db: read from the database)."""
    return {
        **UNCACHED_ENV,
        "STOREFRONT_CACHE_KEY_PREFIX": ds.env["STOREFRONT_CACHE_KEY_PREFIX"] + "u",
    }


def start_pair(
    ds: Dataset, name: str, *, microcache: str = "off", uncached: bool = False, **gunicorn
) -> tuple[harness.Server, harness.Server]:
    """gunicorn (GUNICORN_* from the arguments) with nginx in front of it; `uncached`: the
    page cache stores nothing (uncached_env)."""
    if uncached:
        gunicorn["extra_env"] = {**uncached_env(ds), **gunicorn.get("extra_env", {})}
    g = harness.serve_gunicorn(ds.env, ds.workdir / f"{name}-gunicorn.log", **gunicorn)
    try:
        n = start_nginx(ds, g, name, microcache)
    except BaseException:
        g.stop()
        raise
    return g, n


def start_nginx(ds: Dataset, g: harness.Server, name: str, microcache: str) -> harness.Server:
    """nginx in front of `g`. The per-address rate and connection limits and the limit_req
    bursts are raised far above what wrk sends (every request comes from 127.0.0.1): the
    benchmark measures throughput, not the limiter, which would otherwise answer 429s. The
    limiter itself stays in the path (same zones, same lookups per request)."""
    return harness.start_nginx(
        ds.workdir / f"nginx-{name}",
        [g.netloc],
        static_root=Path(ds.env["STATIC_ROOT"]),
        media_root=Path(ds.env["MEDIA_ROOT"]),
        variables={**THROUGHPUT_LIMITS, "NGINX_MICROCACHE": microcache},
        edit=raise_bursts,
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
