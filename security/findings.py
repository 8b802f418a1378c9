"""The checks' results: each target met or missed with its figures, and security/REPORT.md and
security/results/<timestamp>.json written from them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolbox import REPO_ROOT

from harness import log

SECURITY_DIR = REPO_ROOT / "security"
RESULTS_DIR = SECURITY_DIR / "results"


@dataclass
class Check:
    name: str
    target: str
    passed: bool
    figures: dict = field(default_factory=dict)
    details: str = ""


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, check: Check) -> Check:
        state = "ok" if check.passed else "MISSED"
        log(f"{state:6} {check.name}: {check.figures} {check.details[:300]}")
        self.checks.append(check)
        return check

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def write_report(report: Report, stamp: str, elapsed: float) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data = {
        "when": stamp,
        "elapsed_s": round(elapsed, 1),
        "passed": report.passed,
        "checks": [asdict(c) for c in report.checks],
    }
    result = RESULTS_DIR / f"{stamp}.json"
    result.write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# Security report (`make security`)",
        "",
        f"Run {stamp}, {elapsed:.0f} s, on loopback against a production-profile stack (see",
        "security/run.py). Result: "
        + ("**every target met**." if report.passed else "**targets missed** (below)."),
        f"Raw figures: `security/results/{result.name}`.",
        "",
        "| check | target | result | figures |",
        "|---|---|---|---|",
    ]
    for c in report.checks:
        figures = json.dumps(c.figures, ensure_ascii=False).replace("|", "\\|")
        lines.append(
            f"| {c.name} | {c.target} | {'met' if c.passed else '**missed**'} | `{figures}` |"
        )
    missed = [c for c in report.checks if not c.passed and c.details]
    if missed:
        lines += ["", "## Details of missed targets", ""]
        for c in missed:
            lines += [f"### {c.name}", "", "```", c.details.strip()[:4000], "```", ""]
    accepted = next((c for c in report.checks if c.name == "testssl.sh"), None)
    if accepted and accepted.figures.get("accepted"):
        lines += ["", "## testssl.sh findings accepted, and why", ""]
        for finding, reason in accepted.figures["accepted"].items():
            lines.append(f"- `{finding}`: {reason}")
    (SECURITY_DIR / "REPORT.md").write_text("\n".join(lines) + "\n")
    return result
