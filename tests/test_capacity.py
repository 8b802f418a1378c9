"""bench/capacity.py: the capacity plan from `make bench` JSON (docs/scaling.md)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.append(str(BENCH_DIR))

import capacity  # noqa: E402


def _run(rps: float, *, body: int = 100, ok: bool = True, non_2xx: int = 0) -> dict:
    return {
        "label": f"run at {rps}",
        "url": "http://127.0.0.1:1000/products/",
        "probe": {"status": 200, "bytes": body},
        "rps": rps,
        "ok": ok,
        "non_2xx": non_2xx,
        "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "p95_ms": 10.0,
    }


def _bench() -> dict:
    """Three rendered pages at 400, 600 and 300 req/s on 2 cores, two cached ones, one failed."""
    return {
        "timestamp": "20260101T000000",
        "mode": "full",
        "git": "abc1234",
        "machine": {"cores": 2, "wrk": "wrk"},
        "comparisons": {
            "uncached": {"listing": _run(400, body=1000), "product": _run(600, body=500)},
            "cached": {
                "hello": _run(1000, body=14),
                "signed_in": _run(300, body=1100),
                "listing_hit": _run(800, body=1000),
                "product_hit": _run(900, body=500),
                "micro_hit": _run(50000, body=1000, ok=False, non_2xx=5),
                "static": _run(60000, body=15000),
            },
            "checkout": {"label": "checkout", "orders_per_s": 40.0, "ok": True},
            "sizes": {"runs": {"small": _run(400)}},
        },
        "datasets": {"small": {"products": 960}},
        "shop": {"categories": ["a", "b", "c", "d"]},
    }


def _assumptions(**overrides: object) -> capacity.Assumptions:
    values: dict = {
        "utilization": 0.5,
        "orders_per_request": 0.01,
        "sorts": 2,
        "entry_overhead_factor": 1.0,
        "redis_maxmemory_mb": 1.0,
    }
    values.update(overrides)
    return capacity.Assumptions(**values)


def test_per_core_figures_count_only_successful_runs() -> None:
    rows = {row["key"]: row for row in capacity.per_core_table(_bench())}
    assert rows["listing_uncached"]["rps_per_core"] == 200
    assert rows["product_uncached"]["rps_per_core"] == 300
    assert rows["listing_signed_in"]["rps_per_core"] == 150
    assert rows["listing_hit"]["rps_per_core"] == 400
    assert rows["listing_hit"]["cache"] == "cached"
    assert rows["listing_uncached"]["cache"] == "uncached"
    # A run with non-2xx answers gives no figure.
    assert rows["listing_microcache"]["ok"] is False
    assert rows["listing_microcache"]["rps_per_core"] is None


def test_failed_run_in_the_mix_is_refused() -> None:
    with pytest.raises(ValueError, match="listing_microcache"):
        capacity.plan_capacity(_bench(), _assumptions(mix={"listing_microcache": 1.0}))


def test_mix_host_and_today() -> None:
    plan = capacity.plan_capacity(_bench(), _assumptions())
    # 3 / (1/200 + 1/300 + 1/150) = 200 req/s per core; one 2-core host 400.
    assert plan["mix_rps_per_core"] == pytest.approx(200)
    assert plan["host_mix_rps"] == pytest.approx(400)
    # Peak rule: floor of the lowest rendered page (signed-in listing, 300).
    assert plan["today_rps"] == 300
    assert "cached.signed_in" in plan["today_source"]
    assert capacity.plan_capacity(_bench(), _assumptions(today_rps=123))["today_rps"] == 123


def test_pods_workers_and_connections_for_10x_and_100x() -> None:
    plan = capacity.plan_capacity(_bench(), _assumptions())
    today, x10, x100 = plan["scale"]
    assert today["multiple"] == 1 and x10["multiple"] == 10 and x100["multiple"] == 100
    # 10x = 3,000 req/s; a 1-core pod serves 200 at 100 %, 100 at 50 %.
    assert x10["load_rps"] == 3000
    assert x10["web_pods"] == 30
    assert x10["hosts_2core_equivalent"] == 15  # 3,000 / (400 × 0.5)
    assert x10["emails_per_s"] == pytest.approx(30)
    assert x10["celery_workers"] == 3  # 30 / (40 / 2 cores × 0.5)
    assert x10["pg_client_connections"] == 30 * 2 + 3 * 2 + 1
    assert x10["pg_direct_fits"] is True
    assert x10["pg_server_connections_pgbouncer"] == 30 + 6 + 1  # busy workers 3,000/200 × 2
    assert x10["pgbouncer_pool_fits"] is False
    assert x100["web_pods"] == 300
    assert x100["hosts_2core_equivalent"] == 150
    assert x100["celery_workers"] == 30
    assert x100["pg_client_connections"] == 661
    assert x100["pg_direct_fits"] is False
    assert x100["pg_server_connections_pgbouncer"] == 361
    # Today: 300 req/s, at least min_replicas of each.
    assert today["web_pods"] == 3 and today["celery_workers"] == 2


def test_cache_memory() -> None:
    plan = capacity.plan_capacity(_bench(), _assumptions())
    memory = plan["memory_main"]
    assert memory["dataset"] == "small"
    # 2 sorts × (40 pages of all products + 4 categories × 10 pages) = 160 listing pages.
    assert memory["listing_pages"] == 160
    assert memory["distinct_pages"] == 960 + 160
    assert memory["bytes"] == 960 * 500 + 160 * 1000
    # Entries held at a load: min(distinct, load × TTL); 300 req/s × 300 s > 1,120.
    assert plan["scale"][0]["redis_page_cache_mb"] == pytest.approx(640_000 / 2**20)
    factor = capacity.plan_capacity(_bench(), _assumptions(entry_overhead_factor=1.5))
    assert factor["memory_main"]["bytes"] == pytest.approx(1.5 * 640_000)


def test_saturation_order() -> None:
    plan = capacity.plan_capacity(_bench(), _assumptions())
    order = [(item["part"], item["load_rps"]) for item in plan["saturation"]]
    assert [part for part, _ in order] == [
        "web CPU, one 2-core host",
        "PostgreSQL server connections through PgBouncer",
        "order emails, Celery workers",
        "checkout writes (orders/s measured on one host, PostgreSQL on the same cores)",
        "PostgreSQL connections, direct (no PgBouncer)",
        "Redis page-cache memory",
    ]
    loads = dict(order)
    assert loads["web CPU, one 2-core host"] == pytest.approx(200)
    assert loads["PostgreSQL server connections through PgBouncer"] == pytest.approx(1500)
    assert loads["order emails, Celery workers"] == pytest.approx(2000)
    assert loads["PostgreSQL connections, direct (no PgBouncer)"] == pytest.approx(4600)
    assert loads["Redis page-cache memory"] == math.inf  # 0.61 MB fit in 1 MB
    # A Redis too small for every page saturates at maxmemory / (mean entry × TTL).
    small = capacity.plan_capacity(_bench(), _assumptions(redis_maxmemory_mb=0.5))
    first = small["saturation"][0]
    assert first["part"] == "Redis page-cache memory"
    assert first["load_rps"] == pytest.approx(0.5 * 2**20 / (640_000 / 1120 * 300))


def test_markdown_tables() -> None:
    text = capacity.markdown(capacity.plan_capacity(_bench(), _assumptions(), "fixture.json"))
    assert (
        "| listing | uncached | every request renders the page (page cache off) | 400 | 200 | 400 |"
        in text
    )
    assert (
        "| listing | cached | nginx microcache hit (gunicorn not involved) | failed run | — |"
        in text
    )
    assert "| 10x | 3,000 | 30 | 15 | 30.0 | 3 | 67 | yes | 37 | **no** |" in text
    assert "| 100x | 30,000 | 300 | 150 | 300.0 | 30 | 661 | **no** | 361 | **no** |" in text
    assert "| small | 960 | 4 | 960 | 160 | 500 | 1,000 | 1 |" in text
    assert "| 1 | web CPU, one 2-core host |" in text
    assert "Today's load: **300 req/s**" in text


def test_command_line_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_bench()))
    assert capacity.main([str(path), "--json", "--today-rps", "100", "--multiples", "2"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [row["load_rps"] for row in plan["scale"]] == [100, 200]
    assert plan["saturation"][-1]["load_rps"] is None  # never: JSON has no infinity


def test_committed_full_result(capsys: pytest.CaptureFixture[str]) -> None:
    """The newest committed bench/full/results JSON gives a plan whose figures are the JSON's."""
    path = capacity.newest_result()
    bench = json.loads(path.read_text())
    assert capacity.main([str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    cores = bench["machine"]["cores"]
    rows = {row["key"]: row for row in plan["pages"]}
    listing = bench["comparisons"]["uncached"]["listing"]
    assert rows["listing_uncached"]["rps"] == listing["rps"]
    assert rows["listing_uncached"]["rps_per_core"] == pytest.approx(listing["rps"] / cores)
    hit = bench["comparisons"]["cached"]["product_hit"]
    assert rows["product_hit"]["rps_per_core"] == pytest.approx(hit["rps"] / cores)
    basis = [
        bench["comparisons"]["uncached"]["listing"]["rps"],
        bench["comparisons"]["uncached"]["product"]["rps"],
        bench["comparisons"]["cached"]["signed_in"]["rps"],
    ]
    assert plan["today_rps"] == math.floor(min(basis))
    assert [row["multiple"] for row in plan["scale"]] == [1, 10, 100]
    assert plan["checkout_orders_per_s"] == bench["comparisons"]["checkout"]["orders_per_s"]
    main = plan["memory_main"]
    assert main["products"] == bench["datasets"][main["dataset"]]["products"]
    assert len(plan["saturation"]) == 6
    assert capacity.main([str(path)]) == 0
    assert "### What saturates first" in capsys.readouterr().out


def test_a_result_without_the_page_runs_gets_no_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _bench()
    del bench["comparisons"]["uncached"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(bench))
    assert capacity.main([str(path)]) == 2
    assert "no plan" in capsys.readouterr().err


def test_docs_show_the_plan_of_the_json_they_name(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/scaling.md pastes the script's output for the result it names: regenerate both."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "scaling.md").read_text()
    command = next(line for line in doc.splitlines() if "-m bench.capacity bench/" in line)
    source = command.split()[-1]
    assert capacity.main([str(capacity.REPO_ROOT / source)]) == 0
    assert capsys.readouterr().out.strip() in doc
