"""What a load run's samples say, per phase: counts, failures by kind, latency percentiles.

Pure functions (tests/test_faults_stats.py). A request is *served* when it got a 2xx (or a
status the scenario accepts, such as the checkout's 302); everything else is a failure of its
kind: `reset`, `refused`, `timeout`, `error:<exception>`, or the status code itself ("502").
Latency percentiles are over the requests that got an HTTP answer of any status (a refused
connection "answers" in microseconds and would flatter them).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PHASES = ("before", "during", "after")


@dataclass(frozen=True)
class Sample:
    sent: float  # seconds since the load started: when the request was due
    latency: float  # seconds from `sent` to the whole answer (or the failure)
    outcome: str  # "200", "502", "reset", "refused", "timeout", "error:..."
    method: str = "GET"
    path: str = "/"


def is_answer(outcome: str) -> bool:
    return outcome.isdigit()


def is_served(outcome: str, accepted: frozenset[str] = frozenset()) -> bool:
    return (outcome.startswith("2") and is_answer(outcome)) or outcome in accepted


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (need not be sorted); None when empty."""
    if not values:
        return None
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[max(rank, 1) - 1]


def split_phases(samples: Iterable[Sample], marks: dict[str, float]) -> dict[str, list[Sample]]:
    """Samples by phase, from when each was due: before `marks["during"]`, before
    `marks["after"]`, then after. A missing mark means that phase never started."""
    during = marks.get("during", math.inf)
    after = marks.get("after", math.inf)
    phases: dict[str, list[Sample]] = {name: [] for name in PHASES}
    for sample in samples:
        if sample.sent < during:
            phases["before"].append(sample)
        elif sample.sent < after:
            phases["during"].append(sample)
        else:
            phases["after"].append(sample)
    return phases


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summarize(samples: Sequence[Sample], accepted: frozenset[str] = frozenset()) -> dict:
    """Counts and latency figures of one phase (milliseconds, rounded to 0.1)."""
    outcomes = Counter(s.outcome for s in samples)
    failures = {k: v for k, v in sorted(outcomes.items()) if not is_served(k, accepted)}
    answered = [s.latency for s in samples if is_answer(s.outcome)]
    span = (max(s.sent for s in samples) - min(s.sent for s in samples)) if samples else 0.0
    served = sum(v for k, v in outcomes.items() if is_served(k, accepted))
    return {
        "requests": len(samples),
        "served": served,
        "failed": len(samples) - served,
        "failures": failures,
        "statuses": {k: v for k, v in sorted(outcomes.items()) if is_answer(k)},
        "served_per_s": round(served / span, 1) if span > 0 else None,
        "p50_ms": _ms(percentile(answered, 0.50)),
        "p95_ms": _ms(percentile(answered, 0.95)),
        "p99_ms": _ms(percentile(answered, 0.99)),
        "max_ms": _ms(max(answered)) if answered else None,
    }


def phase_summaries(
    samples: Sequence[Sample], marks: dict[str, float], accepted: frozenset[str] = frozenset()
) -> dict[str, dict]:
    """`summarize` of each phase, plus "all"."""
    result = {
        name: summarize(part, accepted) for name, part in split_phases(samples, marks).items()
    }
    result["all"] = summarize(samples, accepted)
    return result


def failures_of(summary: dict, *kinds: str) -> int:
    """How many failures of these kinds (a kind "5xx" counts every 5xx status)."""
    total = 0
    for kind, count in summary["failures"].items():
        if kind in kinds or ("5xx" in kinds and kind.isdigit() and kind.startswith("5")):
            total += count
    return total
