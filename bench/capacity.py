"""A capacity plan from `make bench` JSON: req/s per core, one host, 10x and 100x, cache memory.

    .venv/bin/python -m bench.capacity                      # newest bench/full/results/*.json
    .venv/bin/python -m bench.capacity bench/results/X.json # a quick-mode result (same shape)
    .venv/bin/python -m bench.capacity --json               # machine-readable
    .venv/bin/python -m bench.capacity --today-rps 300 --multiples 10,100,1000

Every figure comes from the bench JSON or from an option below (each option's help says where
its default comes from); nothing measured is written into this file. What the JSON gives:

- `machine.cores`: the cores the whole bench stack shared (nginx, gunicorn, PostgreSQL, Redis
  and wrk itself); per-core figures are a run's 2xx req/s / those cores, so they are what one
  core of a host running everything serves (conservative for a web pod that runs only gunicorn).
- `comparisons.uncached.*` / `comparisons.cached.*`: the page runs (median round) of
  bench/comparisons.py; `rps` counts 2xx answers only (bench/lua/report.lua). A run with
  `ok: false`, any non-2xx answer or a socket error is a failed run and gives no figure.
- `comparisons.checkout`: orders/s of concurrent buyers with the order email sent in the request.
- `comparisons.*.probe.bytes`: the body of the page as served, the size of a page-cache entry
  before its headers and key (`--entry-overhead-bytes`).
- `datasets` and `shop.categories`: catalog sizes for the number of distinct cacheable pages.

When more than one file is given, each gets its own plan.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
FULL_RESULTS = REPO_ROOT / "bench" / "full" / "results"

# (key, page type, cached or uncached, what it measures, JSON section, JSON key). Sections and
# keys as bench/comparisons.py writes them; the descriptions follow bench/REPORT.md section 2.
PAGE_RUNS: tuple[tuple[str, str, str, str, str, str], ...] = (
    (
        "listing_uncached",
        "listing",
        "uncached",
        "every request renders the page (page cache off)",
        "uncached",
        "listing",
    ),
    (
        "product_uncached",
        "product page",
        "uncached",
        "every request renders the page (page cache off)",
        "uncached",
        "product",
    ),
    (
        "listing_signed_in",
        "listing, signed in with a cart",
        "uncached",
        "page cache bypassed (session): header rendered per visitor, content from the cache",
        "cached",
        "signed_in",
    ),
    (
        "listing_hit",
        "listing",
        "cached",
        "app-cache hit: answered from Redis by Django",
        "cached",
        "listing_hit",
    ),
    (
        "product_hit",
        "product page",
        "cached",
        "app-cache hit: answered from Redis by Django",
        "cached",
        "product_hit",
    ),
    (
        "listing_microcache",
        "listing",
        "cached",
        "nginx microcache hit (gunicorn not involved)",
        "cached",
        "micro_hit",
    ),
    (
        "hello",
        "hello view (reference)",
        "not cacheable",
        "Django hello-world behind the same nginx and gunicorn: the framework's floor",
        "cached",
        "hello",
    ),
    (
        "static",
        "static file (reference)",
        "cached",
        "nginx serving the stylesheet",
        "cached",
        "static",
    ),
)

# loadtest/run.py's PEAK_BASIS: the rendered pages whose lowest rate `make loadtest
# SHAPE=peak` drives by default (derive_peak_rate). Today's load defaults to the same rule.
PEAK_BASIS: tuple[tuple[str, str], ...] = (
    ("uncached", "listing"),
    ("uncached", "product"),
    ("cached", "signed_in"),
)

DEFAULT_MIX = "listing_uncached=1,product_uncached=1,listing_signed_in=1"


@dataclass
class Assumptions:
    """The named inputs that are not in the bench JSON; each is a command-line option."""

    today_rps: float | None = None
    multiples: tuple[float, ...] = (10.0, 100.0)
    mix: dict[str, float] = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    host_cores: int | None = None
    pod_cores: float = 1.0
    pod_workers: int = 2
    pod_threads: int = 1
    utilization: float = 0.7
    min_replicas: int = 2
    celery_cores: float = 1.0
    celery_concurrency: int = 2
    beat: int = 1
    orders_per_request: float = 0.003
    pg_max_connections: int = 100
    pg_reserved: int = 3
    pgbouncer_pool: int = 20
    page_size: int = 24
    sorts: int = 4
    page_ttl_s: float = 300.0
    entry_overhead_factor: float = 1.23
    redis_maxmemory_mb: float = 256.0
    dataset: str | None = None


def parse_mix(text: str) -> dict[str, float]:
    """`key=weight,key=weight` (keys of PAGE_RUNS) into a dict; weights need not sum to 1."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, _, weight = part.partition("=")
        mix[key.strip()] = float(weight)
    known = {run[0] for run in PAGE_RUNS}
    unknown = sorted(set(mix) - known)
    if unknown:
        raise ValueError(f"unknown page keys in the mix: {unknown}; known: {sorted(known)}")
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return mix


def newest_result(directory: Path = FULL_RESULTS) -> Path:
    """The newest bench result of `directory` (file names are timestamps)."""
    paths = sorted(directory.glob("*.json"), key=lambda p: p.name)
    if not paths:
        raise FileNotFoundError(f"no bench result in {directory}")
    return paths[-1]


def successful_rps(run: Any) -> float | None:
    """A run's 2xx req/s, or None when it is missing or failed (not ok, non-2xx, socket errors)."""
    if not isinstance(run, dict) or run.get("rps") is None:
        return None
    if run.get("ok") is False or run.get("non_2xx"):
        return None
    if any((run.get("socket_errors") or {}).values()):
        return None
    return float(run["rps"])


def _run(bench: dict, section: str, key: str) -> dict | None:
    run = ((bench.get("comparisons") or {}).get(section) or {}).get(key)
    return run if isinstance(run, dict) else None


def per_core_table(bench: dict) -> list[dict]:
    """One row per measured page type: 2xx req/s, per core of the bench machine, p95."""
    cores = int(bench["machine"]["cores"])
    rows = []
    for key, page, cache, what, section, json_key in PAGE_RUNS:
        run = _run(bench, section, json_key)
        rps = successful_rps(run)
        gunicorn = (((run or {}).get("resources") or {}).get("by_kind") or {}).get("gunicorn")
        rows.append(
            {
                "key": key,
                "page": page,
                "cache": cache,
                "what": what,
                "source": f"comparisons.{section}.{json_key}",
                "label": (run or {}).get("label"),
                "ok": rps is not None,
                "rps": rps,
                "rps_per_core": rps / cores if rps is not None else None,
                "p95_ms": (run or {}).get("p95_ms") if rps is not None else None,
                "gunicorn_cpu_pct": (gunicorn or {}).get("cpu_pct"),
                "page_bytes": ((run or {}).get("probe") or {}).get("bytes"),
            }
        )
    return rows


def peak_rule_rps(bench: dict) -> tuple[float, str]:
    """loadtest/run.py's peak rate rule on this JSON: floor of the lowest 2xx rate of the
    rendered pages (uncached listing, uncached product page, signed-in listing)."""
    rates = {}
    for section, key in PEAK_BASIS:
        rps = successful_rps(_run(bench, section, key))
        if rps is None:
            raise ValueError(f"comparisons.{section}.{key} is missing or failed: pass --today-rps")
        rates[f"{section}.{key}"] = rps
    bound = min(rates, key=lambda name: rates[name])
    return float(math.floor(rates[bound])), bound


def mix_rps_per_core(rows: list[dict], mix: dict[str, float]) -> float:
    """Requests/s per core of a mix: the weighted harmonic mean of the pages' per-core rates
    (each request of page i costs 1/rate_i core-seconds)."""
    by_key = {row["key"]: row for row in rows}
    cost = 0.0
    for key, weight in mix.items():
        rate = by_key[key]["rps_per_core"]
        if rate is None:
            raise ValueError(f"the mix uses {key}, whose run failed or is missing")
        cost += weight / rate
    return sum(mix.values()) / cost


def main_dataset(bench: dict) -> str:
    """The dataset the page runs used: the sizes run served by the same stack (same host:port)
    as comparisons.uncached.listing; else the dataset with the most products."""
    datasets = bench.get("datasets") or {}
    listing = _run(bench, "uncached", "listing") or {}
    netloc = urlsplit(listing.get("url", "")).netloc
    for name, run in (
        ((bench.get("comparisons") or {}).get("sizes") or {}).get("runs") or {}
    ).items():
        same = isinstance(run, dict) and urlsplit(run.get("url", "")).netloc == netloc
        if netloc and same and name in datasets:
            return name
    return max(datasets, key=lambda name: datasets[name]["products"])


def cache_memory(bench: dict, rows: list[dict], a: Assumptions) -> list[dict]:
    """Page-cache memory per dataset: distinct cacheable pages × bytes per entry.

    Distinct pages: one product page per product; listing pages: sorts × (pages of all products
    + pages of each category, products split evenly over shop.categories). Searches are not
    counted (their query strings are unbounded, each a page of its own while its TTL lasts).
    """
    by_key = {row["key"]: row for row in rows}
    listing_bytes = by_key["listing_hit"]["page_bytes"] or by_key["listing_uncached"]["page_bytes"]
    product_bytes = by_key["product_hit"]["page_bytes"] or by_key["product_uncached"]["page_bytes"]
    categories = len((bench.get("shop") or {}).get("categories") or [])
    out = []
    for name, data in (bench.get("datasets") or {}).items():
        products = int(data["products"])
        pages_all = math.ceil(products / a.page_size)
        pages_cat = categories * math.ceil(products / max(categories, 1) / a.page_size)
        listing_pages = a.sorts * (pages_all + (pages_cat if categories else 0))
        listing_entry = listing_bytes * a.entry_overhead_factor
        product_entry = product_bytes * a.entry_overhead_factor
        total = products * product_entry + listing_pages * listing_entry
        distinct = products + listing_pages
        out.append(
            {
                "dataset": name,
                "products": products,
                "categories": categories,
                "product_pages": products,
                "listing_pages": listing_pages,
                "distinct_pages": distinct,
                "product_entry_bytes": product_entry,
                "listing_entry_bytes": listing_entry,
                "mean_entry_bytes": total / distinct,
                "bytes": total,
                "mb": total / 2**20,
            }
        )
    return out


def _held_mb(load: float, memory: dict, a: Assumptions) -> float:
    """Page-cache entries held at `load` req/s: at most one stored per request within the TTL,
    at most every distinct page: min(distinct, load × TTL) × mean entry bytes."""
    entries = min(memory["distinct_pages"], load * a.page_ttl_s)
    return entries * memory["mean_entry_bytes"] / 2**20


def scale_row(load: float, multiple: float, plan: dict, a: Assumptions) -> dict:
    """Pods, workers and connections for `load` req/s of the mix."""
    per_core = plan["mix_rps_per_core"]
    pod_full = per_core * a.pod_cores  # req/s of one web pod at 100 % CPU
    pod_capacity = pod_full * a.utilization
    pods = max(a.min_replicas, math.ceil(load / pod_capacity))
    hosts = math.ceil(load / (plan["host_mix_rps"] * a.utilization))
    emails = load * a.orders_per_request
    celery_capacity = plan["emails_per_s_per_core"] * a.celery_cores * a.utilization
    celery = max(a.min_replicas, math.ceil(emails / celery_capacity)) if celery_capacity else None
    web_clients = pods * a.pod_workers * a.pod_threads
    celery_clients = (celery or 0) * a.celery_concurrency
    clients = web_clients + celery_clients + a.beat
    # Transaction pooling: a server connection is held only inside a transaction, so at most
    # by the busy web workers (load / pod_full of each pod's workers × threads), every Celery
    # process and beat.
    busy_web = load / pod_full * a.pod_workers * a.pod_threads
    server = math.ceil(busy_web) + celery_clients + a.beat
    return {
        "multiple": multiple,
        "load_rps": load,
        "web_pods": pods,
        "hosts_2core_equivalent": hosts,
        "emails_per_s": emails,
        "celery_workers": celery,
        "pg_client_connections": clients,
        "pg_direct_fits": clients <= a.pg_max_connections - a.pg_reserved,
        "pg_server_connections_pgbouncer": server,
        "pgbouncer_pool_fits": server <= a.pgbouncer_pool,
        "redis_page_cache_mb": _held_mb(load, plan["memory_main"], a),
        "redis_fits": _held_mb(load, plan["memory_main"], a) <= a.redis_maxmemory_mb,
    }


def saturation(plan: dict, a: Assumptions) -> list[dict]:
    """The load (req/s of the mix) at which each part reaches its limit, lowest first."""
    per_core = plan["mix_rps_per_core"]
    pod_full = per_core * a.pod_cores
    per_client_full = pod_full / (a.pod_workers * a.pod_threads)
    celery_clients = a.min_replicas * a.celery_concurrency
    memory = plan["memory_main"]
    checkout = plan["checkout_orders_per_s"]
    items = [
        {
            "part": "web CPU, one 2-core host",
            "limit": f"{a.utilization:.0%} CPU of {plan['host_cores']} cores",
            "load_rps": plan["host_mix_rps"] * a.utilization,
            "next_step": "more web pods (stateless: capacity grows with each pod); serve more "
            "pages from the page cache / nginx microcache (a hit costs a fraction of a render)",
        },
        {
            "part": "PostgreSQL connections, direct (no PgBouncer)",
            "limit": f"max_connections {a.pg_max_connections} − {a.pg_reserved} reserved − "
            f"{celery_clients} Celery − {a.beat} beat",
            "load_rps": max(
                0,
                (a.pg_max_connections - a.pg_reserved - celery_clients - a.beat)
                // (a.pod_workers * a.pod_threads),
            )
            * pod_full
            * a.utilization,
            "next_step": "PgBouncer in transaction pooling (section PgBouncer below): clients "
            "no longer hold a server connection each",
        },
        {
            "part": "PostgreSQL server connections through PgBouncer",
            "limit": f"pool of {a.pgbouncer_pool}",
            "load_rps": max(0, a.pgbouncer_pool - celery_clients - a.beat) * per_client_full,
            "next_step": "a larger pool (up to max_connections) or a second pool on a read "
            "replica for catalog reads (section Read replicas below)",
        },
        {
            "part": "Redis page-cache memory",
            "limit": f"maxmemory {a.redis_maxmemory_mb:g} MB holds "
            f"{a.redis_maxmemory_mb * 2**20 / memory['mean_entry_bytes']:,.0f} of "
            f"{memory['distinct_pages']:,} pages (allkeys-lru: evicts, hit ratio falls)",
            "load_rps": (
                math.inf
                if memory["mb"] <= a.redis_maxmemory_mb
                else a.redis_maxmemory_mb * 2**20 / (memory["mean_entry_bytes"] * a.page_ttl_s)
            ),
            "next_step": f"maxmemory ≥ the distinct pages' {memory['mb']:,.0f} MB "
            f"({memory['dataset']}), or a Redis with more memory; failover with Sentinel "
            "(section Redis Sentinel below)",
        },
        {
            "part": "order emails, Celery workers",
            "limit": f"{a.min_replicas} workers × {a.celery_cores:g} core at {a.utilization:.0%}",
            "load_rps": (
                plan["emails_per_s_per_core"]
                * a.celery_cores
                * a.utilization
                * a.min_replicas
                / a.orders_per_request
            ),
            "next_step": "more Celery workers (the queue absorbs bursts; emails wait, orders "
            "do not)",
        },
        {
            "part": "checkout writes (orders/s measured on one host, PostgreSQL on the same cores)",
            "limit": f"{checkout:g} orders/s",
            "load_rps": checkout / a.orders_per_request,
            "next_step": "PostgreSQL primary on its own host and a checkout bench against it "
            "(the measured figure includes the web work and the email on the same 2 cores)",
        },
    ]
    today = plan["today_rps"]
    for item in items:
        item["times_today"] = item["load_rps"] / today if today else None
    return sorted(items, key=lambda item: item["load_rps"])


def plan_capacity(bench: dict, a: Assumptions, source: str = "") -> dict:
    """The whole plan as a dict (what --json prints)."""
    machine = bench["machine"]
    cores = int(machine["cores"])
    host_cores = a.host_cores or cores
    rows = per_core_table(bench)
    for row in rows:
        row["host_rps"] = row["rps_per_core"] * host_cores if row["ok"] else None
    mix_core = mix_rps_per_core(rows, a.mix)
    if a.today_rps is not None:
        today, today_source = a.today_rps, "--today-rps"
    else:
        today, bound = peak_rule_rps(bench)
        today_source = (
            "loadtest/run.py's peak rule on this JSON: the lowest 2xx rate of the rendered "
            f"pages, here comparisons.{bound}"
        )
    checkout = bench["comparisons"]["checkout"]
    orders = float(checkout["orders_per_s"]) if checkout.get("ok", True) else 0.0
    memory = cache_memory(bench, rows, a)
    main = a.dataset or main_dataset(bench)
    plan: dict[str, Any] = {
        "source": source,
        "timestamp": bench.get("timestamp"),
        "mode": bench.get("mode"),
        "commit": bench.get("git"),
        "machine_cores": cores,
        "host_cores": host_cores,
        "wrk": machine.get("wrk"),
        "pages": rows,
        "mix": a.mix,
        "mix_rps_per_core": mix_core,
        "host_mix_rps": mix_core * host_cores,
        "today_rps": today,
        "today_source": today_source,
        "checkout_orders_per_s": orders,
        "checkout_label": checkout.get("label"),
        "emails_per_s_per_core": orders / cores,
        "memory": memory,
        "memory_main": next(m for m in memory if m["dataset"] == main),
        "assumptions": a.__dict__,
    }
    plan["scale"] = [scale_row(today * m, m, plan, a) for m in (1.0, *a.multiples)]
    plan["saturation"] = saturation(plan, a)
    return plan


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    if value == math.inf:
        return "never"
    return f"{value:,.{digits}f}"


def _load_name(multiple: float) -> str:
    return "today" if multiple == 1 else f"{multiple:g}x"


def _finite(value: Any) -> Any:
    """JSON has no infinity: `never` saturating is written as null."""
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def markdown(plan: dict) -> str:
    """The plan as Markdown (what docs/scaling.md shows)."""
    a = plan["assumptions"]
    out = [
        f"Source: `{plan['source']}` (mode {plan['mode']}, {plan['timestamp']}, commit "
        f"{plan['commit']}); load `{plan['wrk']}` on {plan['machine_cores']} cores shared by "
        "nginx, gunicorn, PostgreSQL, Redis and wrk. Only 2xx answers count; a failed run "
        "gives no figure.",
        "",
        "### Requests per second per core",
        "",
        f"Per core = the run's 2xx req/s / {plan['machine_cores']} (the bench machine's "
        f"cores); one host = per core × {plan['host_cores']}.",
        "",
        "| page | cached? | what the run measures | 2xx req/s | per core | one host | p95 ms "
        "| gunicorn CPU | JSON |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in plan["pages"]:
        cpu = row["gunicorn_cpu_pct"]
        out.append(
            f"| {row['page']} | {row['cache']} | {row['what']} | "
            f"{_n(row['rps']) if row['ok'] else 'failed run'} | {_n(row['rps_per_core'])} | "
            f"{_n(row['host_rps'])} | {_n(row['p95_ms'], 1)} | "
            f"{'—' if cpu is None else f'{cpu:g} %'} | `{row['source']}` |"
        )
    mix = ", ".join(f"{k} × {w:g}" for k, w in plan["mix"].items())
    out += [
        "",
        f"Checkout (`{plan['checkout_label']}`): {_n(plan['checkout_orders_per_s'], 2)} "
        f"orders/s, {_n(plan['emails_per_s_per_core'], 2)} per core (each order's email sent "
        "in the request).",
        "",
        "### One host",
        "",
        f"The mix ({mix}; `--mix`): **{_n(plan['mix_rps_per_core'])} req/s per core, "
        f"{_n(plan['host_mix_rps'])} req/s on one {plan['host_cores']}-core host** at 100 % "
        f"CPU (weighted harmonic mean of the measured pages), "
        f"{_n(plan['host_mix_rps'] * a['utilization'])} req/s at the planned "
        f"{a['utilization']:.0%}. The bench JSON holds no run of a mix: this figure is "
        "computed from the single-page runs above.",
        "",
        f"Today's load: **{_n(plan['today_rps'])} req/s** ({plan['today_source']}).",
        "",
        "### 10x and 100x",
        "",
        f"Web pod: {a['pod_cores']:g} core, {a['pod_workers']} sync gunicorn workers × "
        f"{a['pod_threads']} thread, planned at {a['utilization']:.0%} CPU, at least "
        f"{a['min_replicas']}: pods = max({a['min_replicas']}, ⌈load / (mix per core × "
        f"{a['pod_cores']:g} × {a['utilization']:g})⌉). Celery worker: {a['celery_cores']:g} "
        f"core, concurrency {a['celery_concurrency']}; emails/s = load × "
        f"{a['orders_per_request']:g} orders per request; one worker sends ≥ checkout orders/s "
        "per core (the email is a part of a measured checkout).",
        "",
        "PostgreSQL clients = pods × workers × threads + Celery workers × concurrency + beat "
        f"(CONN_MAX_AGE keeps one connection per worker thread); direct limit: max_connections "
        f"{a['pg_max_connections']} − {a['pg_reserved']} reserved. Through PgBouncer "
        "(transaction pooling) server connections = ⌈busy web workers⌉ + Celery processes + "
        "beat, busy web workers = load / (mix per core × pod cores) × workers × threads; "
        f"pool {a['pgbouncer_pool']}.",
        "",
        "| load | req/s | web pods | 2-core hosts | emails/s | Celery workers | PG clients "
        "| direct fits | PgBouncer server conns | pool fits | page cache MB | Redis fits |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|",
    ]
    for row in plan["scale"]:
        out.append(
            f"| {_load_name(row['multiple'])} | "
            f"{_n(row['load_rps'])} | {row['web_pods']} | {row['hosts_2core_equivalent']} | "
            f"{_n(row['emails_per_s'], 1)} | {_n(row['celery_workers'])} | "
            f"{row['pg_client_connections']} | {_yes(row['pg_direct_fits'])} | "
            f"{row['pg_server_connections_pgbouncer']} | {_yes(row['pgbouncer_pool_fits'])} | "
            f"{_n(row['redis_page_cache_mb'])} | {_yes(row['redis_fits'])} |"
        )
    main = plan["memory_main"]["dataset"]
    out += [
        "",
        "### Cache memory",
        "",
        f"Bytes per entry = page body as served (`probe.bytes` of the app-cache hit runs) × "
        f"{a['entry_overhead_factor']:g} for the pickled headers, key and Redis' allocation "
        f"(`--entry-overhead-factor`). Distinct pages = products (product pages) + "
        f"{a['sorts']} sorts × (⌈products / {a['page_size']}⌉ + categories × "
        "⌈products / categories / page size⌉) listing pages; searches not counted. Entries held "
        f"at a load = min(distinct pages, load × {a['page_ttl_s']:g} s TTL). Main dataset "
        f"(the page runs'): {main}.",
        "",
        "| dataset | products | categories | product pages | listing pages | bytes/product "
        "page | bytes/listing page | all pages cached MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in plan["memory"]:
        out.append(
            f"| {m['dataset']} | {_n(m['products'])} | {m['categories']} | "
            f"{_n(m['product_pages'])} | {_n(m['listing_pages'])} | "
            f"{_n(m['product_entry_bytes'])} | {_n(m['listing_entry_bytes'])} | {_n(m['mb'])} |"
        )
    out += [
        "",
        "### What saturates first",
        "",
        "| # | part | limit | saturates at req/s | × today | next step |",
        "|---:|---|---|---:|---:|---|",
    ]
    for i, item in enumerate(plan["saturation"], 1):
        out.append(
            f"| {i} | {item['part']} | {item['limit']} | {_n(item['load_rps'])} | "
            f"{_n(item['times_today'], 1)} | {item['next_step']} |"
        )
    return "\n".join(out) + "\n"


def _multiples(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    d = Assumptions()
    p = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description="Capacity plan from `make bench` JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("files", nargs="*", type=Path, help="bench JSON (default: newest full)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--today-rps",
        type=float,
        default=None,
        help="today's peak load in req/s; default: the rate `make loadtest SHAPE=peak` drives, "
        "by loadtest/run.py's rule applied to this JSON (floor of the lowest 2xx rate of the "
        "uncached listing, uncached product page and signed-in listing)",
    )
    p.add_argument("--multiples", type=_multiples, default=d.multiples, help="e.g. 10,100")
    p.add_argument(
        "--mix",
        type=parse_mix,
        default=DEFAULT_MIX,
        help="request mix as page-key=weight; default: every request rendered, the three pages "
        "of the peak rule in equal parts (no page-cache hit: the worst case)",
    )
    p.add_argument("--host-cores", type=int, default=None, help="default: machine.cores")
    p.add_argument("--pod-cores", type=float, default=d.pod_cores, help="CPU of a web pod")
    p.add_argument(
        "--pod-workers",
        type=int,
        default=d.pod_workers,
        help="gunicorn sync workers per web pod (sync ×2 ties the best of the bench's sweep, "
        "comparisons.workers.finding)",
    )
    p.add_argument("--pod-threads", type=int, default=d.pod_threads, help="GUNICORN_THREADS")
    p.add_argument(
        "--utilization",
        type=float,
        default=d.utilization,
        help="planned CPU fraction (HPA target; headroom for spikes and a lost pod)",
    )
    p.add_argument("--min-replicas", type=int, default=d.min_replicas, help="web pods and workers")
    p.add_argument("--celery-cores", type=float, default=d.celery_cores)
    p.add_argument(
        "--celery-concurrency",
        type=int,
        default=d.celery_concurrency,
        help="processes per worker (deploy/docker/compose.yaml: --concurrency=2)",
    )
    p.add_argument("--beat", type=int, default=d.beat, help="beat processes (a singleton)")
    p.add_argument(
        "--orders-per-request",
        type=float,
        default=d.orders_per_request,
        help="orders (one email each) per request; default from the committed peak load test "
        "loadtest/results/20261206T235855-peak-summary.json: 93 checkout POSTs in 30,186 "
        "requests",
    )
    p.add_argument(
        "--pg-max-connections",
        type=int,
        default=d.pg_max_connections,
        help="PostgreSQL max_connections (its default)",
    )
    p.add_argument(
        "--pg-reserved",
        type=int,
        default=d.pg_reserved,
        help="superuser_reserved_connections (PostgreSQL's default)",
    )
    p.add_argument(
        "--pgbouncer-pool",
        type=int,
        default=d.pgbouncer_pool,
        help="PgBouncer server pool (issue 15: at most 20 server connections)",
    )
    p.add_argument(
        "--page-size", type=int, default=d.page_size, help="STOREFRONT_PAGE_SIZE default"
    )
    p.add_argument(
        "--sorts",
        type=int,
        default=d.sorts,
        help="listing sorts (storefront/catalog/selectors.py PRODUCT_SORTS)",
    )
    p.add_argument(
        "--page-ttl-s",
        type=float,
        default=d.page_ttl_s,
        help="STOREFRONT_CACHE_TTL_PAGES default",
    )
    p.add_argument(
        "--entry-overhead-factor",
        type=float,
        default=d.entry_overhead_factor,
        help="Redis memory of a page-cache entry / its body (the bench JSON records bodies "
        "only). Default measured once with MEMORY USAGE (Redis 7.0, a scratch db) on a "
        "pickled {content, headers} entry as cache_pages.py stores it: 20,632 bytes for a "
        "16,768-byte body, 6,296 for 5,156 (1.23 and 1.22)",
    )
    p.add_argument(
        "--redis-maxmemory-mb",
        type=float,
        default=d.redis_maxmemory_mb,
        help="the cache Redis' maxmemory (deploy/docker/compose.yaml: 256mb, allkeys-lru)",
    )
    p.add_argument("--dataset", default=None, help="dataset for the plan (default: the pages')")
    return p


def assumptions_from(args: argparse.Namespace) -> Assumptions:
    """The parsed options as Assumptions."""
    mix = args.mix if isinstance(args.mix, dict) else parse_mix(args.mix)
    return Assumptions(
        today_rps=args.today_rps,
        multiples=tuple(args.multiples),
        mix=mix,
        host_cores=args.host_cores,
        pod_cores=args.pod_cores,
        pod_workers=args.pod_workers,
        pod_threads=args.pod_threads,
        utilization=args.utilization,
        min_replicas=args.min_replicas,
        celery_cores=args.celery_cores,
        celery_concurrency=args.celery_concurrency,
        beat=args.beat,
        orders_per_request=args.orders_per_request,
        pg_max_connections=args.pg_max_connections,
        pg_reserved=args.pg_reserved,
        pgbouncer_pool=args.pgbouncer_pool,
        page_size=args.page_size,
        sorts=args.sorts,
        page_ttl_s=args.page_ttl_s,
        entry_overhead_factor=args.entry_overhead_factor,
        redis_maxmemory_mb=args.redis_maxmemory_mb,
        dataset=args.dataset,
    )


def _display(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    a = assumptions_from(args)
    files = args.files or [newest_result()]
    plans = []
    for f in files:
        try:
            plans.append(plan_capacity(json.loads(f.read_text()), a, _display(f)))
        except (ValueError, KeyError, TypeError) as exc:
            # An older result lacks a figure the plan needs (e.g. before the page runs existed).
            print(f"{_display(f)}: no plan: {exc!r}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(_finite(plans if len(plans) > 1 else plans[0]), indent=2, default=str))
    else:
        print("\n".join(markdown(plan) for plan in plans), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
