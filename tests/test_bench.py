"""`make bench` counts only 2xx answers as throughput: a run that saw a 429 (or any non-2xx,
or a socket error) is failed, never a figure, and is named in the report.

The parsing and verdict logic is tested on wrk's report lines; one test runs the real wrk
with bench/lua/report.lua against a small local HTTP server answering 200s and 429s.
"""

from __future__ import annotations

import http.server
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.append(str(BENCH_DIR))

import comparisons  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import targets  # noqa: E402


def wrk_line(**overrides: int | bool) -> str:
    """A BENCH_JSON line as report.lua prints it: 1,000 responses, all 2xx, in 2 s."""
    raw: dict[str, int | bool] = {
        "requests": 1000,
        "duration_us": 2_000_000,
        "bytes": 123_000,
        "status_counted": True,
        "status_1xx": 0,
        "status_2xx": 1000,
        "status_3xx": 0,
        "status_4xx": 0,
        "status_5xx": 0,
        "status_other": 0,
        "p50_us": 1000,
        "p90_us": 2000,
        "p95_us": 2500,
        "p99_us": 4000,
        "max_us": 9000,
        "mean_us": 1200,
        "err_connect": 0,
        "err_read": 0,
        "err_write": 0,
        "err_status": 0,
        "err_timeout": 0,
    }
    raw.update(overrides)
    fields = ", ".join(
        f'"{k}": {str(v).lower() if isinstance(v, bool) else v}' for k, v in raw.items()
    )
    return f"Running 2s test @ http://127.0.0.1:1/\nBENCH_JSON {{{fields}}}\n"


def parsed(**overrides: int | bool) -> dict:
    raw = measure.parse_wrk_output(wrk_line(**overrides))
    assert raw is not None
    return raw


def test_all_2xx_is_a_figure_in_2xx_per_second() -> None:
    raw = parsed()
    assert measure.run_problems(raw) == []
    metrics = measure.run_metrics(raw)
    assert metrics["rps"] == 500.0
    assert metrics["statuses"]["2xx"] == 1000
    assert metrics["non_2xx"] == 0
    assert metrics["p95_ms"] == 2.5


def test_429s_fail_the_run_and_are_not_throughput() -> None:
    # What the microcache run used to report: a third of its answers were nginx's 429s.
    raw = parsed(status_2xx=660, status_4xx=340, err_status=340)
    assert measure.run_problems(raw) == ["non-2xx responses: 340 × 4xx"]
    metrics = measure.run_metrics(raw)
    assert metrics["rps"] == 330.0  # 660 2xx in 2 s, not 1,000 responses in 2 s
    assert metrics["non_2xx"] == 340


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"status_2xx": 990, "status_3xx": 10}, "non-2xx responses: 10 × 3xx"),
        ({"status_2xx": 999, "status_5xx": 1, "err_status": 1}, "non-2xx responses: 1 × 5xx"),
        ({"err_read": 3}, "socket errors: 3 read"),
        ({"err_timeout": 2, "err_connect": 1}, "socket errors: 1 connect, 2 timeout"),
        ({"status_2xx": 998}, "status counts add up to 998, wrk completed 1,000 responses"),
        (
            {"status_2xx": 0, "status_3xx": 1000},
            "no 2xx response at all",
        ),
        (
            {"status_counted": False, "status_2xx": 0},
            "statuses not counted (BENCH_COUNT_STATUS=0): not a figure",
        ),
    ],
)
def test_anything_but_2xx_without_socket_errors_fails(overrides: dict, problem: str) -> None:
    assert problem in measure.run_problems(parsed(**overrides))


def test_a_failed_run_enters_no_ratio_and_no_target() -> None:
    good = {"label": "static", "ok": True, "rps": 40_000.0}
    limited = {"label": "microcache hit", "ok": False, "rps": 38_000.0}
    assert measure.ratio(good, good) == 1.0
    assert measure.ratio(limited, good) is None
    assert measure.ratio(good, limited) is None
    results = {
        "comparisons": {
            "cached": {
                "hello": {"ok": True, "rps": 1000.0},
                "listing_hit": {"ok": True, "rps": 900.0},
                "static_micro_nginx": good,
                "micro_hit": limited,
            }
        }
    }
    summary = targets.summarize(results)
    assert summary["micro_hit_vs_static"] is None
    assert summary["app_hit_vs_hello"] == 0.9
    assert targets.met("micro_hit_vs_static", summary["micro_hit_vs_static"]) is None
    assert targets.met("app_hit_vs_hello", 0.9) is True
    assert targets.met("app_hit_vs_hello", 0.84) is False


def test_the_report_names_the_failed_run_with_its_status_counts(tmp_path: Path) -> None:
    limited = {
        "label": "listing nginx microcache hit",
        "ok": False,
        "problems": ["non-2xx responses: 123,354 × 4xx"],
        "statuses": {"1xx": 0, "2xx": 266_000, "3xx": 0, "4xx": 123_354, "5xx": 0, "other": 0},
        "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "rps": 53_000.0,
        "probe": {"status": 200, "x_cache_status": "HIT"},
    }
    results = {
        "mode": "smoke",
        "timestamp": "20260101T000000",
        "comparisons": {"cached": {"micro_hit": limited}},
        "failures": [
            {
                "label": limited["label"],
                "problems": limited["problems"],
                "statuses": limited["statuses"],
            }
        ],
        "summary": {},
    }
    text = report.markdown(results, tmp_path / "r.json", {}, targets.TARGETS, tmp_path)
    failed = text.split("## Failed runs", 1)[1].split("## Targets", 1)[0]
    assert "| listing nginx microcache hit | non-2xx responses: 123,354 × 4xx | " in failed
    assert "266,000 × 2xx, 123,354 × 4xx" in failed
    row = next(line for line in text.splitlines() if line.startswith("| listing, nginx microcache"))
    assert "**FAILED**" in row
    assert "53,000" not in row  # no rate for a failed run
    assert "| nginx microcache hit ≥ 0.5 × nginx static, 0 non-2xx | — |" in text


def _bracketed_run(label: str, rps: float, before: float, after: float, ok: bool = True) -> dict:
    run = {"label": label, "ok": True, "rps": rps, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    run["reference"] = {
        "before": {"label": "hello (reference 1)", "rps": before, "ok": True},
        "after": {"label": "hello (reference 2)", "rps": after, "ok": ok},
    }
    return run


def test_a_bracketed_page_is_judged_against_the_references_around_it(tmp_path: Path) -> None:
    """The machine slowed between the first hello and the hit: the hit's ratio is to the mean
    of the hello runs right before and after it, not to a reference from minutes earlier."""
    first_hello = {"label": "hello (reference 1)", "ok": True, "rps": 2000.0}
    first_hello |= {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    hit = _bracketed_run("listing app-cache hit", 900.0, before=1000.0, after=1000.0)
    assert measure.bracket_mean(hit) == 1000.0
    assert measure.ratio_to_reference(hit, first_hello) == 0.9
    # A failed reference run: no ratio (not a fallback to another reference).
    unsure = _bracketed_run("product page app-cache hit", 900.0, 1000.0, 1000.0, ok=False)
    assert measure.ratio_to_reference(unsure, first_hello) is None
    # Not bracketed (older results): the single reference.
    assert measure.ratio_to_reference({"ok": True, "rps": 500.0}, first_hello) == 0.25

    cached = {"hello": first_hello, "references": [first_hello], "listing_hit": hit}
    summary = targets.summarize({"comparisons": {"cached": cached}})
    assert summary["app_hit_vs_hello"] == 0.9
    results = {"mode": "smoke", "timestamp": "20260101T000000", "comparisons": {"cached": cached}}
    text = report.markdown(results, tmp_path / "r.json", {}, targets.TARGETS, tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| listing, app-cache hit"))
    assert "| 0.90 |" in row


def test_the_hit_targets_show_what_one_redis_round_trip_alone_costs(tmp_path: Path) -> None:
    """The hello + round-trip run is no target: its ratio is stated beside both hit targets
    and shown as its own row of section 2."""
    first_hello = {"label": "hello (reference 1)", "ok": True, "rps": 2000.0}
    first_hello |= {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    cached = {
        "hello": first_hello,
        "references": [first_hello],
        "listing_hit": _bracketed_run("listing app-cache hit", 780.0, 1000.0, 1000.0),
        "product_hit": _bracketed_run("product page app-cache hit", 800.0, 1000.0, 1000.0),
        "round_trip": _bracketed_run("hello + one Redis round trip", 760.0, 1000.0, 1000.0),
    }
    results = {"mode": "smoke", "timestamp": "20260101T000000", "comparisons": {"cached": cached}}
    summary = targets.summarize(results)
    assert summary["round_trip_vs_hello"] == 0.76
    assert "round_trip_vs_hello" not in targets.TARGETS
    results["summary"] = summary
    text = report.markdown(results, tmp_path / "r.json", {}, targets.TARGETS, tmp_path)
    for target in ("app-cache hit, listing", "app-cache hit, product page"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {target} ≥"))
        assert "**missed** (hello + the hit's one Redis round trip alone: 0.76 ×)" in row, row
    row = next(line for line in text.splitlines() if line.startswith("| hello + one Redis round"))
    assert "| 0.76 |" in row


def test_rounds_keep_the_median_round_and_show_every_ratio() -> None:
    """Three rounds of a page, each between its own hello runs: the page's figure is the
    round with the median ratio (a slow patch of the VM in one round does not decide it), and
    a failed round is the figure instead (the bench fails)."""
    rounds = [
        _bracketed_run("listing, round 1", 500.0, before=2000.0, after=2000.0),  # 0.25
        _bracketed_run("listing, round 2", 600.0, before=2000.0, after=2000.0),  # 0.30
        _bracketed_run("listing, round 3", 580.0, before=2000.0, after=2000.0),  # 0.29
    ]
    chosen = comparisons.median_round(rounds)
    assert chosen["label"] == "listing, round 3"
    assert chosen["rounds"] == [0.25, 0.3, 0.29]
    assert measure.ratio_to_reference(chosen, None) == 0.29
    failed = dict(rounds[1], ok=False)
    assert comparisons.median_round([rounds[0], failed, rounds[2]]) is failed


class _Answers(http.server.BaseHTTPRequestHandler):
    """/ok: 200; /limited: every third request 429 (nginx's limiter under a burst)."""

    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            _Answers.count += 1
            n = _Answers.count
        status = 429 if self.path.startswith("/limited") and n % 3 == 0 else 200
        body = b"page\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")
def test_real_wrk_run_with_429s_fails_and_counts_only_2xx(
    answering_server: str, tmp_path: Path
) -> None:
    bench = measure.Bench("smoke", tmp_path)
    ok = bench.wrk("all 200", f"{answering_server}/ok", servers=[])
    limited = bench.wrk("some 429", f"{answering_server}/limited", servers=[])

    assert ok["ok"] is True, ok["problems"]
    assert ok["statuses"]["2xx"] == ok["responses"] > 0
    assert ok["rps"] == pytest.approx(ok["statuses"]["2xx"] / ok["seconds"], rel=0.01)

    assert limited["ok"] is False
    assert limited["statuses"]["4xx"] > 0
    assert limited["statuses"]["2xx"] + limited["statuses"]["4xx"] == limited["responses"]
    assert limited["rps"] == pytest.approx(
        limited["statuses"]["2xx"] / limited["seconds"], rel=0.01
    )
    assert f"non-2xx responses: {limited['statuses']['4xx']:,} × 4xx" in limited["problems"]
    assert [f["label"] for f in bench.failures] == ["some 429"]
    assert measure.ratio(limited, ok) is None


def _rate(label: str, rps: float, ok: bool = True) -> dict:
    return {"label": label, "ok": ok, "rps": rps, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}


def test_worker_sweep_keeps_each_configurations_median_round() -> None:
    runs = [_rate("r1", 700.0), _rate("r2", 640.0), _rate("r3", 690.0)]
    chosen = comparisons.median_rate(runs)
    assert chosen["label"] == "r3" and chosen["rounds"] == [700.0, 640.0, 690.0]
    failed = _rate("r2", 640.0, ok=False)
    assert comparisons.median_rate([runs[0], failed, runs[2]]) is failed
    assert "rounds" not in comparisons.median_rate([runs[0]])


def _config(workers: int, listing: list[float], hello: list[float]) -> dict:
    return {
        "label": f"sync ×{workers}",
        "worker_class": "sync",
        "workers": workers,
        "threads": 1,
        "listing": comparisons.median_rate([_rate("l", x) for x in listing]),
        "hello": comparisons.median_rate([_rate("h", x) for x in hello]),
    }


def test_worker_finding_ties_the_default_to_the_best_within_its_rounds_spread() -> None:
    """On 2 cores the default is ×2. ×5's listing median is 4 % ahead, but its own rounds spread
    over 10 %: the run cannot tell the two apart. On hello ×2 is 20 % behind, beyond the 5 %
    spread of the best's rounds: the default loses there, and the finding says so."""
    runs = [
        _config(2, [694.0, 700.0, 680.0], [1600.0, 1650.0, 1620.0]),
        _config(5, [735.0, 700.0, 770.0], [2000.0, 2050.0, 2100.0]),
    ]
    finding = comparisons.worker_finding(runs, cores=2)
    listing, hello = finding["listing"], finding["hello"]
    assert listing["best"] == "sync ×5" and listing["noise"] == round(70 / 735, 3)
    assert listing["default_rps"] == 694.0 and listing["default_ties_best"] is True
    assert hello["best"] == "sync ×5" and hello["default_ties_best"] is False
    assert hello["default_loss"] == round(1 - 1620 / 2050, 3)
