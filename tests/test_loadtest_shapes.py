"""`make loadtest`'s peak, large and stress shapes (loadtest/run.py, loadtest/locustfile.py).

The pure parts run on real data: the peak rate is derived from the committed bench results,
the saturation verdict from samples shaped as the Sampler takes them, the summaries from the
records the locustfile writes, the worker/backlog reading from this process's own sockets in
/proc/net/tcp. Locust itself runs once against a small local server answering 200s and 429s
(the pacer's rate, 429s never throughput), and once, marked `stack`, through run.py against a
tiny seeded stack (PostgreSQL, gunicorn, nginx).
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO_ROOT, Unavailable, require_binary

_spec = importlib.util.spec_from_file_location("loadtest_run", REPO_ROOT / "loadtest" / "run.py")
assert _spec and _spec.loader
loadtest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loadtest)

BENCH = REPO_ROOT / "bench" / "results"
# The quick bench committed with 56bc560 (comparisons.uncached / .cached), and one written
# before those sections existed.
RECENT_BENCH = BENCH / "20261206T055231.json"
OLD_BENCH = BENCH / "20261122T092244.json"


# --- the peak rate ------------------------------------------------------------------------------


def test_peak_rate_is_the_slowest_rendered_page_of_the_bench() -> None:
    bench = json.loads(RECENT_BENCH.read_text())
    figures = {
        "uncached.listing": bench["comparisons"]["uncached"]["listing"]["rps"],
        "uncached.product": bench["comparisons"]["uncached"]["product"]["rps"],
        "cached.signed_in": bench["comparisons"]["cached"]["signed_in"]["rps"],
    }

    derived = loadtest.derive_peak_rate(bench, "bench/results/20261206T055231.json")

    slowest = min(figures, key=figures.get)
    assert derived["rate"] == math.floor(figures[slowest])
    assert derived["bounded_by"].endswith(f"({slowest}): {figures[slowest]} req/s")
    assert {name: b["rate_2xx"] for name, b in derived["basis"].items()} == figures
    assert derived["source"] == "bench/results/20261206T055231.json"
    assert derived["bench_timestamp"] == bench["timestamp"]
    # Cached answers are far faster and never set the rate.
    assert derived["rate"] < bench["comparisons"]["cached"]["listing_hit"]["rps"]


def test_a_failed_bench_figure_is_no_rate() -> None:
    bench = json.loads(RECENT_BENCH.read_text())
    bench["comparisons"]["uncached"]["listing"]["ok"] = False
    with pytest.raises(ValueError, match=r"uncached\.listing is a failed run"):
        loadtest.derive_peak_rate(bench, "x.json")

    old = json.loads(OLD_BENCH.read_text())  # no comparisons.uncached yet
    with pytest.raises(ValueError, match=r"no comparisons\.uncached\.listing figure"):
        loadtest.derive_peak_rate(old, "old.json")


def test_the_newest_bench_result_with_the_figures_is_used(tmp_path: Path) -> None:
    # Not a git checkout: every *.json counts, newest (by its timestamp name) first.
    shutil.copy(RECENT_BENCH, tmp_path / RECENT_BENCH.name)
    shutil.copy(OLD_BENCH, tmp_path / "20991231T000000.json")  # newer, but lacks the figures
    shutil.copy(OLD_BENCH, tmp_path / "20200101T000000.json")

    assert [p.name for p in loadtest.committed_bench_results(tmp_path)] == [
        "20991231T000000.json",
        RECENT_BENCH.name,
        "20200101T000000.json",
    ]
    derived = loadtest.peak_rate_from_bench(tmp_path)
    assert derived["source"] == str(tmp_path / RECENT_BENCH.name)
    assert (
        derived["rate"]
        == loadtest.derive_peak_rate(json.loads(RECENT_BENCH.read_text()), "x")["rate"]
    )

    (tmp_path / RECENT_BENCH.name).unlink()
    with pytest.raises(ValueError, match="no bench result to derive the peak rate from"):
        loadtest.peak_rate_from_bench(tmp_path)


def test_committed_bench_results_are_the_ones_git_tracks() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "bench/results/*.json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = loadtest.committed_bench_results(BENCH)
    assert sorted(str(p.relative_to(REPO_ROOT)) for p in found) == sorted(tracked)
    assert [p.name for p in found] == sorted((p.name for p in found), reverse=True)


# --- summaries: only 2xx is throughput -----------------------------------------------------------

T0 = 1_800_000_000.0


def test_summary_counts_only_2xx_as_throughput() -> None:
    records = [
        # [end time, response ms, final status, success, name]
        [T0 + 0.5, 10.0, 200, 1, "GET /"],
        [T0 + 1.0, 20.0, 200, 1, "GET /"],
        [T0 + 1.5, 2.0, 429, 0, "GET /products/ [listing]"],  # nginx's limiter
        [T0 + 2.0, 900.0, 503, 0, "GET /products/ [listing]"],
        [T0 + 2.5, 5000.0, 0, 0, "POST /checkout/ [POST]"],  # no answer
        [T0 + 3.0, 30.0, 200, 0, "POST /accounts/login/ [POST]"],  # 200 without a session
        [T0 + 3.5, 40.0, 302, 0, "GET /cart/"],  # a redirect left unfollowed
        [T0 + 4.0, 50.0, 201, 1, "POST /api/auth/token/ [POST]"],
        [T0 + 9.0, 60.0, 200, 1, "GET /"],  # after the window
    ]

    summary = loadtest.summarize_records(records, T0, T0 + 5)

    assert summary["requests"] == 8
    assert summary["ok_2xx"] == 3
    assert summary["failures"] == 5
    assert summary["error_rate"] == 0.625
    assert summary["seconds"] == 5.0
    assert summary["rate_2xx"] == 0.6  # 3 successes in 5 s; the 429 and the rest are not
    assert summary["rate_all"] == 1.6
    assert summary["statuses"] == {
        "200": 3,
        "201": 1,
        "302": 1,
        "429": 1,
        "503": 1,
        "no answer": 1,
    }
    # Nearest rank over every request, failures included: 2, 10, 20, 30, 40, 50, 900, 5000.
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]) == (30.0, 5000.0, 5000.0)
    listing = summary["endpoints"]["GET /products/ [listing]"]
    assert (listing["requests"], listing["ok_2xx"], listing["failures"]) == (2, 0, 2)
    assert listing["statuses"] == {"429": 1, "503": 1}
    assert summary["endpoints"]["GET /"]["ok_2xx"] == 2

    whole = loadtest.summarize_records(records)  # no window: first start to last end
    assert whole["requests"] == 9 and whole["ok_2xx"] == 4
    assert whole["seconds"] == 11.5  # the unanswered POST started at T0 - 2.5


def test_a_peak_minute_is_sustained_only_at_rate_with_p95_and_errors_in_bounds() -> None:
    base = {"rate_2xx": 96.0, "p95_ms": 400.0, "error_rate": 0.0}
    assert loadtest.sustained(base, 100)["sustained"] is True
    assert loadtest.sustained({**base, "rate_2xx": 94.0}, 100)["checks"] == {
        "rate_2xx >= 95% of target": False,
        "p95 <= 1000 ms": True,
        "error rate <= 1%": True,
    }
    assert loadtest.sustained({**base, "p95_ms": 1200.0}, 100)["sustained"] is False
    assert loadtest.sustained({**base, "error_rate": 0.02}, 100)["sustained"] is False


# --- what saturated first ------------------------------------------------------------------------

LIMITS = {"cores": 2, "cpu_pct": 200, "workers": 2, "locust_cpu_pct": 100, "max_connections": 100}


def sample(
    s: int,
    *,
    machine: float = 120.0,
    locust: float = 30.0,
    busy: float = 1.0,
    cpu_wait: float = 0.1,
    queue: int = 0,
    server_connections: int = 6,
) -> dict:
    """One sample as Sampler.sample returns it (plus join_samples' users and rate)."""
    return {
        "t": T0 + s,
        "s": float(s),
        "cpu_pct": {
            "gunicorn": min(machine - locust - 21.0, 200.0),
            "nginx": 8.0,
            "postgres": 12.0,
            "redis": 1.0,
            "locust": locust,
            "machine": machine,
            "other": 0.0,
        },
        "workers_busy": busy,
        "workers_cpu_wait": cpu_wait,
        "accept_queue": queue,
        "upstream_connections": round(busy) + queue,
        "db_connections": 2,
        "db_active": 1,
        "server_connections": server_connections,
        "db_parallel_workers": 0,
        "users": 10 * s,
        "rate_2xx": 20 * s,
    }


def test_workers_saturated_well_before_the_cpu() -> None:
    samples = [sample(s, machine=199.0 if s == 4 else 120.0) for s in range(1, 11)]
    samples += [sample(s, machine=150.0, busy=1.9, queue=4) for s in range(11, 31)]
    samples += [sample(s, machine=195.0, busy=1.95, queue=9) for s in range(31, 46)]

    verdict = loadtest.saturation_verdict(samples, LIMITS, until=T0 + 45)

    assert verdict["first"] == "workers" and verdict["together_with"] == []
    # The first 10 s window at >= 90 %: samples 10-19, nine of them busy at 1.9 of 2.
    assert verdict["resources"]["workers"]["at_limit_from_s"] == 10.0
    assert verdict["resources"]["cpu"]["at_limit_from_s"] == 28.0  # 3 x 150 % + 7 x 195 %
    assert verdict["resources"]["database_connections"]["at_limit_from_s"] is None
    assert verdict["resources"]["database_connections"]["max_utilisation"] == 0.06
    assert verdict["resources"]["load_generator"]["at_limit_from_s"] is None
    at = verdict["at_first"]
    assert (at["from_s"], at["to_s"], at["users"]) == (10.0, 19.0, [100, 190])
    assert at["workers_busy"] == 1.81 and at["accept_queue"] == 3.6 and at["accept_queue_max"] == 4
    assert at["cpu_pct"]["machine"] == 147.0
    assert verdict["reading"].startswith("every worker busy with a backlog while the CPU had room")
    assert verdict["closest"] is None
    assert verdict["samples_judged"] == 45


def test_cpu_bound_workers_fill_both_limits_together() -> None:
    samples = [sample(s) for s in range(1, 6)]
    samples += [sample(s, machine=196.0, busy=1.9, cpu_wait=0.6, queue=8) for s in range(6, 21)]

    verdict = loadtest.saturation_verdict(samples, LIMITS)

    assert verdict["first"] == "cpu" and verdict["together_with"] == ["workers"]
    assert verdict["resources"]["cpu"]["at_limit_from_s"] == 4.0  # 2 x 120 + 8 x 196: 180.8 %
    assert verdict["resources"]["workers"]["at_limit_from_s"] == 5.0  # 1.0 + 9 x 1.9: 90.5 %
    # In the CPU's first window (4-13 s): 0.5 of 1.72 busy worker-seconds a second.
    assert "the workers are CPU-bound (they spent 29% of their busy time" in verdict["reading"]


def test_only_samples_before_the_break_count_and_none_may_be_reached() -> None:
    samples = [sample(s, machine=199.0 if s == 5 else 120.0) for s in range(1, 11)]
    samples += [sample(s, machine=196.0, busy=2.0, queue=4) for s in range(11, 31)]

    verdict = loadtest.saturation_verdict(samples, LIMITS, until=T0 + 10)

    assert verdict["first"] is None and verdict["at_first"] is None
    assert verdict["together_with"] == []
    assert verdict["closest"] == "cpu"  # one second at 199 % is a mean of 128 % over ten
    assert verdict["resources"]["cpu"]["max_utilisation"] == 0.64
    assert verdict["samples_judged"] == 10
    assert verdict["reading"].startswith("no resource stayed at its limit")


def test_busy_workers_without_a_backlog_are_not_saturated() -> None:
    samples = [sample(s, busy=2.0, queue=s % 2) for s in range(1, 16)]  # backlog 1, 0, 1, ...
    verdict = loadtest.saturation_verdict(samples, LIMITS)
    assert verdict["first"] is None
    assert verdict["resources"]["workers"]["max_utilisation"] == 1.0

    for entry in samples[4:]:
        entry["accept_queue"] = 2
    verdict = loadtest.saturation_verdict(samples, LIMITS)
    assert verdict["first"] == "workers"
    assert verdict["resources"]["workers"]["at_limit_from_s"] == 1.0  # mean backlog 1.2


def test_the_load_generator_and_database_connections_are_judged_too() -> None:
    client_bound = [sample(s) for s in range(1, 4)]
    client_bound += [sample(s, locust=97.0) for s in range(4, 14)]
    verdict = loadtest.saturation_verdict(client_bound, LIMITS)
    assert verdict["first"] == "load_generator"
    assert verdict["reading"].startswith("Locust's one process used a whole core")

    connections = [sample(s, server_connections=95) for s in range(1, 11)]
    verdict = loadtest.saturation_verdict(connections, LIMITS)
    assert verdict["first"] == "database_connections"
    assert verdict["resources"]["database_connections"]["max_utilisation"] == 0.95


def test_workers_first_but_waiting_for_a_cpu_reads_as_a_cpu_limit() -> None:
    samples = [sample(s, machine=170.0, busy=1.9, cpu_wait=0.6, queue=5) for s in range(1, 13)]
    verdict = loadtest.saturation_verdict(samples, LIMITS)
    assert verdict["first"] == "workers" and verdict["together_with"] == []
    assert "the workers spent 32% of their busy time waiting for a CPU" in verdict["reading"]


def test_stress_report_breaking_point_and_saturation_after_the_first_step() -> None:
    # The first users' logins fill the CPU for 12 s; neither the stop condition nor the
    # saturation verdict judge the first step (15 s).
    samples = [sample(s, machine=195.0) for s in range(1, 13)]
    samples += [sample(s) for s in range(13, 15)]
    samples += [sample(s, machine=150.0, busy=1.9, queue=4) for s in range(15, 31)]
    records = [[T0 + 10 + i * 0.1, 50.0, 200, 1, "GET /"] for i in range(200)]  # 10-30 s
    records += [[T0 + 29.5, 1500.0, 502, 0, "GET /cart/"]]
    run = {
        "verdict": {
            "reason": "p95 1500 ms > 1000 ms at 300 users",
            "users_reached": 300,
            "stopped_at": T0 + 30,
            "run_time_s": 30.0,
        }
    }

    report = loadtest.stress_report(run, records, samples, LIMITS, step_seconds=15)

    assert report["broke"] is True
    point = report["breaking_point"]
    assert point["users"] == 300
    assert point["last_10_s"]["rate_2xx"] == 10.0  # 100 successes in [20 s, 30 s)
    assert point["last_10_s"]["statuses"] == {"200": 100, "502": 1}
    saturation = report["saturated_first"]
    assert saturation["first"] == "workers"
    assert saturation["resources"]["cpu"]["at_limit_from_s"] is None
    assert saturation["at_first"]["from_s"] == 15.0
    assert saturation["samples_judged"] == 16
    assert len(report["samples"]) == 30
    text = loadtest.describe_stress(report)
    assert text.startswith("p95 1500 ms > 1000 ms at 300 users: breaking point 300 users, 10.0")
    assert "first at its limit: workers, from 15.0 s (150 users;" in text

    no_break = {"verdict": {**run["verdict"], "reason": "time limit 300 s without breaking"}}
    report = loadtest.stress_report(no_break, records, samples, LIMITS, step_seconds=15)
    assert report["broke"] is False
    assert "time limit 300 s without breaking: reached 300 users" in loadtest.describe_stress(
        report
    )


def test_samples_are_joined_to_users_and_the_2xx_of_the_second_before() -> None:
    raw = [{k: v for k, v in sample(s).items() if k not in ("users", "rate_2xx")} for s in (2, 3)]
    records = [
        [T0 + 1.2, 5.0, 200, 1, "GET /"],
        [T0 + 1.7, 5.0, 200, 1, "GET /"],
        [T0 + 1.9, 5.0, 429, 0, "GET /"],
        [T0 + 2.4, 5.0, 200, 1, "GET /"],
    ]
    users = [[T0 + 0.5, 10], [T0 + 2.5, 20]]

    loadtest.join_samples(raw, records, users)

    assert [(s["users"], s["rate_2xx"]) for s in raw] == [(10, 2), (20, 1)]


# --- gunicorn's busy workers and backlog, from /proc/net/tcp -----------------------------------


def test_accept_queue_and_connections_from_proc_net_tcp() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    served, _ = listener.accept()  # one "worker" serving, two connections waiting
    try:
        with open("/proc/net/tcp") as table:
            queue, established = loadtest.tcp_listen_state(port, table)

        assert queue == 2
        assert established == 3  # the server side only, not the clients' ends
    finally:
        for sock in (served, *clients, listener):
            sock.close()


def test_schedstat_counts_time_on_a_cpu() -> None:
    before = loadtest.schedstat(os.getpid())
    sum(i * i for i in range(300_000))  # some CPU work
    after = loadtest.schedstat(os.getpid())
    assert before is not None and after is not None
    assert after[0] > before[0] and after[1] >= before[1]
    assert loadtest.schedstat(2**22 + 1) is None  # above pid_max: no such process


# --- Locust with the peak shape against a small server ------------------------------------------


class _Shop(http.server.BaseHTTPRequestHandler):
    """/: 200 with product links; every other GET alternately 200 (JSON under /api/) and
    429; POSTs 429."""

    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.lock:
            _Shop.count += 1
            n = _Shop.count
        if self.path == "/":
            self._answer(200, b'<a href="/products/oak-desk-1/">desk</a>')
        elif n % 2:
            self._answer(429, b"slow down")
        elif self.path.startswith("/api/"):
            self._answer(200, b'{"results": [], "next": null}')
        else:
            self._answer(200, b"<p>page</p>")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(429, b"slow down")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shop_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_locust_peak_shape_paces_requests_and_429s_are_failures(
    shop_server: str, tmp_path: Path
) -> None:
    records_path = tmp_path / "records.json"
    env = {
        **os.environ,
        "LOADTEST_SHAPE": "peak",
        "LOADTEST_RATE": "20",
        "LOADTEST_USERS": "5",
        "LOADTEST_SPAWN_RATE": "5",
        "LOADTEST_WARMUP": "1",
        "LOADTEST_DURATION": "5",
        "LOADTEST_RECORDS": str(records_path),
    }
    locustfile = str(REPO_ROOT / "loadtest" / "locustfile.py")
    command = [sys.executable, "-m", "locust", "-f", locustfile, "--headless",
               "--host", shop_server, "--only-summary", "--loglevel", "WARNING",
               "--stop-timeout", "2"]  # fmt: skip
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert records_path.exists(), done.stderr[-3000:]
    run = json.loads(records_path.read_text())
    window = run["window"]
    assert window["end"] - window["start"] == pytest.approx(5.0, abs=0.01)
    assert run["pacer"]["rate"] == 20.0

    summary = loadtest.summarize_records(run["records"], window["start"], window["end"])

    # The pacer: 20 requests a second in all, never more (at most 0.5 s of unused slots
    # banked); a server answering in a millisecond lets 5 users keep up.
    assert 0.8 * 20 <= summary["rate_all"] <= (20 * 5 + 10) / 5
    assert summary["statuses"].get("429", 0) > 0
    assert summary["ok_2xx"] == summary["statuses"].get("200", 0)
    assert summary["failures"] == summary["requests"] - summary["ok_2xx"]
    assert summary["rate_2xx"] == round(summary["ok_2xx"] / 5.0, 1) < summary["rate_all"]
    # The locustfile never records a 429 as a success, wherever it came from.
    assert not [r for r in run["records"] if r[2] == 429 and r[3]]


# --- one real peak run through run.py -----------------------------------------------------------


def _require_postgres() -> None:
    import psycopg

    from harness.postgres import postgres_admin_url

    try:
        psycopg.connect(postgres_admin_url(), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc


@pytest.mark.stack
def test_peak_run_through_nginx_on_a_tiny_stack(tmp_path: Path) -> None:
    require_binary("nginx", "nginx")
    _require_postgres()
    env = {
        **os.environ,
        "LOADTEST_DURATION": "10",
        "LOADTEST_WARMUP": "5",
        "LOADTEST_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    command = [sys.executable, str(REPO_ROOT / "loadtest" / "run.py"), "--shape", "peak",
               "--rate", "20", "--products", "200", "--orders", "100", "--shoppers", "20",
               "--plain-static", "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (path,) = tmp_path.glob("*-peak-summary.json")
    summary = json.loads(path.read_text())

    assert summary["target"]["rate"] == 20.0 and summary["target"]["source"] == "--rate"
    assert summary["target"]["users"] == 10
    assert summary["path"] == "locust → nginx → gunicorn"
    assert summary["dataset"]["products"] == 200 and summary["dataset"]["seed_s"] > 0
    window = summary["measured_window"]
    assert window["end"] - window["start"] == pytest.approx(10.0, abs=0.01)
    assert summary["seconds"] == 10.0
    assert summary["requests"] == summary["ok_2xx"] + summary["failures"]
    assert sum(summary["statuses"].values()) == summary["requests"]
    assert summary["failures"] == 0, summary["statuses"]
    assert summary["rate_2xx"] == round(summary["ok_2xx"] / 10.0, 1)
    assert 0 < summary["rate_2xx"] <= summary["rate_all"] <= (20 * 10 + 10) / 10
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert set(summary["verdict"]["checks"]) == {
        "rate_2xx >= 95% of target",
        "p95 <= 1000 ms",
        "error rate <= 1%",
    }
    resources = summary["resources"]
    assert resources["sampler_errors"] == []
    assert resources["limits"]["workers"] == os.cpu_count()
    assert resources["limits"]["cpu_pct"] == 100 * os.cpu_count()
    during = resources["during"]
    assert during["cpu_pct.gunicorn"]["max"] > 0
    # One persistent connection per sync worker, never more.
    assert 1 <= during["db_connections"]["max"] <= resources["limits"]["workers"]
