"""`make faults`' pure parts: percentiles, phases, failure kinds, targets, the report; and the
fixed-rate load generator against a small local HTTP server (no stack)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from faults.load import OpenLoopLoad, Request, failure_kind
from faults.report import (
    ScenarioResult,
    Target,
    overall_passed,
    render_phases,
    render_report,
    write_report,
)
from faults.stats import (
    Sample,
    failures_of,
    is_served,
    percentile,
    phase_summaries,
    split_phases,
    summarize,
)


def sample(sent: float, outcome: str = "200", latency: float = 0.010) -> Sample:
    return Sample(sent=sent, latency=latency, outcome=outcome)


# --- statistics ---------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled order must not matter
    values.reverse()
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2
    assert percentile([], 0.5) is None


def test_percentile_refuses_a_fraction_outside_0_1() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_phases_split_on_when_a_request_was_due() -> None:
    samples = [sample(t) for t in (0.0, 0.9, 1.0, 1.5, 2.0, 3.0)]
    phases = split_phases(samples, {"during": 1.0, "after": 2.0})
    assert [s.sent for s in phases["before"]] == [0.0, 0.9]
    assert [s.sent for s in phases["during"]] == [1.0, 1.5]
    assert [s.sent for s in phases["after"]] == [2.0, 3.0]


def test_a_phase_that_never_started_is_empty() -> None:
    phases = split_phases([sample(0.0), sample(5.0)], {"during": 1.0})
    assert len(phases["before"]) == 1
    assert len(phases["during"]) == 1
    assert phases["after"] == []


def test_only_2xx_counts_as_served_unless_accepted() -> None:
    assert is_served("200") and is_served("204")
    assert not is_served("302") and not is_served("503") and not is_served("reset")
    assert is_served("302", frozenset({"302"}))
    assert not is_served("2xx-looking-error")  # not a status code


def test_summarize_counts_failures_by_kind_and_percentiles_over_answers() -> None:
    samples = [sample(i * 0.01, "200", latency=(i + 1) / 1000) for i in range(100)]
    samples += [sample(1.0, "502", 0.002), sample(1.0, "reset", 0.0), sample(1.0, "refused", 0.0)]
    summary = summarize(samples)
    assert summary["requests"] == 103
    assert summary["served"] == 100
    assert summary["failed"] == 3
    assert summary["failures"] == {"502": 1, "refused": 1, "reset": 1}
    assert summary["statuses"] == {"200": 100, "502": 1}
    # Percentiles over the 101 answered requests (the 502 included, the transport failures not).
    assert summary["p50_ms"] == 50.0
    assert summary["p99_ms"] == 99.0
    assert summary["max_ms"] == 100.0
    assert summary["served_per_s"] == 100.0  # 100 served over the 1 s the samples span
    assert failures_of(summary, "reset") == 1
    assert failures_of(summary, "5xx") == 1
    assert failures_of(summary, "5xx", "reset", "refused") == 3


def test_summarize_an_empty_phase() -> None:
    summary = summarize([])
    assert summary["requests"] == 0
    assert summary["p99_ms"] is None
    assert summary["served_per_s"] is None


def test_phase_summaries_add_up_to_all() -> None:
    samples = [sample(t / 10, "200" if t % 7 else "503") for t in range(60)]
    summaries = phase_summaries(samples, {"during": 2.0, "after": 4.0})
    parts = [summaries[p]["requests"] for p in ("before", "during", "after")]
    assert parts == [20, 20, 20]
    assert (
        sum(summaries[p]["failed"] for p in ("before", "during", "after"))
        == (summaries["all"]["failed"])
    )
    assert summaries["all"]["failures"] == {"503": 9}


def test_failure_kinds_of_transport_errors() -> None:
    assert failure_kind(ConnectionRefusedError()) == "refused"
    assert failure_kind(ConnectionResetError()) == "reset"
    assert failure_kind(BrokenPipeError()) == "reset"
    assert failure_kind(http.client.RemoteDisconnected("closed")) == "reset"
    assert failure_kind(TimeoutError()) == "timeout"
    assert failure_kind(OSError("other")) == "error:OSError"


# --- targets and the report ---------------------------------------------------------------------


def test_targets_evaluate() -> None:
    assert Target.equal("failed", 0, 0).passed
    assert not Target.equal("failed", 3, 0).passed
    assert Target.at_most("p99", 999.0, 1000, " ms").passed
    assert Target.at_most("p99", 1000.0, 1000, " ms").passed
    assert not Target.at_most("p99", 1000.1, 1000, " ms").passed
    assert not Target.at_most("p99", None, 1000).passed  # nothing measured is no pass
    assert Target.at_most("p99", 5, 1000, " ms").expected == "≤ 1000 ms"
    met = Target.true("works", True)
    assert met.passed and met.measured == "yes"
    assert not Target.true("works", False).passed


def test_a_scenario_passes_only_with_targets_all_met_and_no_error() -> None:
    result = ScenarioResult("s", "S")
    assert not result.passed  # no target measured
    result.add(Target.equal("failed", 0, 0))
    assert result.passed
    result.add(Target.equal("resets", 1, 0))
    assert not result.passed
    crashed = ScenarioResult("c", "C", targets=[Target.equal("failed", 0, 0)], error="Boom")
    assert not crashed.passed
    assert overall_passed([ScenarioResult("a", "A", targets=[Target.equal("x", 1, 1)])])
    assert not overall_passed([])
    assert not overall_passed([result])


def _results() -> list[ScenarioResult]:
    samples = [sample(t / 10, "200") for t in range(30)] + [sample(1.5, "502")]
    good = ScenarioResult(
        "hup_sync",
        "gunicorn HUP",
        summary="HUP five times.",
        phases=phase_summaries(samples, {"during": 1.0, "after": 2.0}),
        facts={"HUPs": 5, "by kind": {"502": 1}},
        notes=["a note"],
        seconds=12.3,
    )
    good.add(Target.equal("failed requests", 1, 0))
    other = ScenarioResult("nginx_reload", "nginx reload", seconds=4)
    other.add(Target.equal("failed requests", 0, 0))
    return [good, other]


def test_report_renders_the_summary_targets_and_phases() -> None:
    text = render_report(_results(), {"stamp": "20260101T000000", "seconds": 99, "machine": "m"})
    assert "**1/2 scenarios met every target.**" in text
    assert "| [gunicorn HUP](#hup_sync) | **FAIL** | 0/1 | 12 s |" in text
    assert "| [nginx reload](#nginx_reload) | pass | 1/1 | 4 s |" in text
    assert "| failed requests | = 0 | 1 | **NO** |" in text
    assert '<a id="hup_sync"></a>' in text
    assert "| during | 11 | 10 | 1 (502 1) |" in text
    assert "- by kind: 502 1" in text
    assert "> a note" in text


def test_render_phases_skips_empty_phases() -> None:
    phases = phase_summaries([sample(0.0), sample(0.5)], {})
    rows = render_phases(phases)
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["before", "all"]


def test_write_report_writes_markdown_and_json(tmp_path: Path) -> None:
    path = write_report(_results(), {"stamp": "20260101T000000", "seconds": 1.5}, tmp_path)
    assert path == tmp_path / "results" / "20260101T000000.json"
    data = json.loads(path.read_text())
    assert data["passed"] is False
    assert [s["name"] for s in data["scenarios"]] == ["hup_sync", "nginx_reload"]
    assert data["scenarios"][0]["phases"]["during"]["failures"] == {"502": 1}
    assert data["scenarios"][1]["passed"] is True
    assert (tmp_path / "REPORT.md").read_text().startswith("# Fault injection report")


# --- the load generator -------------------------------------------------------------------------


@pytest.fixture
def tiny_server() -> Iterator[str]:
    """Answers /ok with 200 and /fail with 503."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if self.path == "/ok" else 503
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_holds_its_rate_and_records_each_request(tiny_server: str) -> None:
    load = OpenLoopLoad(
        tiny_server,
        rate=100,
        duration=1.0,
        request_for=lambda i: Request("GET", "/fail" if i % 10 == 0 else "/ok"),
    ).start()
    samples = load.wait()
    # Due at 0, 0.01, ... 1.0 s: 101 requests, whatever the answers took.
    assert len(samples) == 101
    assert [round(s.sent, 2) for s in samples[:3]] == [0.0, 0.01, 0.02]
    summary = summarize(samples)
    assert summary["failures"] == {"503": 11}
    assert summary["served"] == 90
    assert all(s.latency >= 0 for s in samples)


def test_load_is_bounded_by_its_request_count(tiny_server: str) -> None:
    load = OpenLoopLoad(
        tiny_server,
        rate=200,
        duration=10,
        max_requests=25,
        request_for=lambda i: Request("GET", "/ok"),
    ).start()
    assert len(load.wait()) == 25


def test_load_records_refused_connections() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    load = OpenLoopLoad(
        f"http://127.0.0.1:{port}", rate=50, duration=0.1, request_for=lambda i: Request("GET", "/")
    ).start()
    samples = load.wait()
    assert {s.outcome for s in samples} == {"refused"}
    assert summarize(samples)["p99_ms"] is None  # no answer, no latency figure


def test_marks_start_phases_at_the_current_moment(tiny_server: str) -> None:
    load = OpenLoopLoad(
        tiny_server, rate=100, duration=0.3, request_for=lambda i: Request("GET", "/ok")
    ).start()
    load.mark("during")
    samples = load.wait()
    assert 0 <= load.marks["during"] < 0.1
    phases = split_phases(samples, load.marks)
    assert len(phases["during"]) >= 25
