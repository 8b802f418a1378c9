# ruff: noqa: E501
"""`make security`: scanners and scripted attacks against the real stack, with a report.

    .venv/bin/python security/run.py            # everything (about 10 minutes)
    .venv/bin/python security/run.py --only bandit,observatory

Starts its own stack on loopback, as production runs it: a throwaway PostgreSQL database
(`security_<pid>`, migrated, seeded, dropped afterwards), Redis with a key prefix of its own
(deleted afterwards), gunicorn with STOREFRONT_ENV=production, and nginx rendered from
deploy/nginx with the *production* profile and its production rate limits (HTTP redirects to
HTTPS; self-signed certificate) on free ports. Then runs every check below, writes
security/REPORT.md and security/results/<timestamp>.json, and exits 1 when a target is missed.

Static checks: bandit (no medium/high finding without an inline justification), `storefront
check --deploy` (0 issues), gixy on the rendered production config (0), hadolint on the
Dockerfile (0), `systemd-analyze security` of every unit (exposure < 5.0).
Against the stack: Mozilla HTTP Observatory rules (httpobs-local-scan, score >= 100 on five
pages), testssl.sh (TLS 1.2/1.3 only, nothing above LOW but the justified exceptions below),
slowhttptest slowloris and slow body with 1,000 connections while a normal client on another
loopback address keeps >= 99 % success, schemathesis on /api/schema/ (anonymous, customer and
staff tokens: no server error, no undocumented status code), and the scripted attacks: brute
force on /admin/login/ and the site login, a cache flood of junk query strings, a stock race.

The scanners come from scripts/security_tools.sh (Debian packages and .venv-security).

The pieces, by topic: scanners.py (static checks and scanners), attacks.py (the scripted
attacks), prod_stack.py (the stack under attack, started with harness/), findings.py (checks,
REPORT.md and the results JSON), toolbox.py (finding the scanners).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import sys
import time

from toolbox import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # for harness/

from attacks import attack_brute_force, attack_cache_flood, attack_stock_race, check_slowhttp
from findings import Check, Report, write_report
from prod_stack import REDIS_URL, start_stack
from scanners import (
    check_bandit,
    check_deploy,
    check_gixy,
    check_hadolint,
    check_observatory,
    check_schemathesis,
    check_systemd,
    check_testssl,
)

import harness
from harness import PROCESSES, log

CHECKS = {
    "bandit": "static",
    "deploy": "static",
    "hadolint": "static",
    "systemd": "static",
    "gixy": "stack",
    "observatory": "stack",
    "testssl": "stack",
    "schemathesis": "stack",
    "race": "stack",
    "flood": "stack",
    "slowhttp": "stack",
    "bruteforce": "stack",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(CHECKS)}")
    args = parser.parse_args()
    chosen = [c for c in CHECKS if not args.only or c in args.only.split(",")]
    PROCESSES.install()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    started = time.monotonic()
    report = Report()
    workdir = harness.temp_dir(f"storefront-security-{stamp}-")
    run_id = f"sec{os.getpid()}"
    db = None
    try:
        production_env = harness.app_env(
            database_url="sqlite:///" + str(workdir / "check.sqlite3"),
            var_dir=workdir / "check-var",
            static_root=workdir / "check-static",
            redis_url=None,
            cache_prefix=run_id,
            extra={
                "STOREFRONT_ENV": "production",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "ALLOWED_HOSTS": "shop.example.com",
            },
        )
        static = {
            "bandit": lambda: check_bandit(report),
            "deploy": lambda: check_deploy(report, production_env),
            "hadolint": lambda: check_hadolint(report),
            "systemd": lambda: check_systemd(report),
        }
        for name in chosen:
            if name in static:
                guarded(report, name, static[name])
        if any(CHECKS[c] == "stack" for c in chosen):
            sec, db = start_stack(workdir, run_id)
            on_stack = {
                "gixy": lambda: check_gixy(report, sec),
                "observatory": lambda: check_observatory(report, sec),
                "testssl": lambda: check_testssl(report, sec, workdir),
                "schemathesis": lambda: check_schemathesis(report, sec, workdir),
                "race": lambda: attack_stock_race(report, sec),
                "flood": lambda: attack_cache_flood(report, sec),
                "slowhttp": lambda: check_slowhttp(report, sec, workdir),
                "bruteforce": lambda: attack_brute_force(report, sec),
            }
            for name in chosen:
                if name in on_stack:
                    guarded(report, name, on_stack[name])
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        report.add(Check("run", "completes", False, {}, "interrupted"))
    except harness.Unavailable as exc:
        log(f"cannot start the stack: {exc}")
        report.add(Check("stack", "starts", False, {}, str(exc)))
    finally:
        PROCESSES.stop_all()
        if db:
            db.drop()
        harness.redis_delete_prefix(REDIS_URL, run_id)
        shutil.rmtree(workdir, ignore_errors=True)
    result = write_report(report, stamp, time.monotonic() - started)
    met = sum(c.passed for c in report.checks)
    log(
        f"{met}/{len(report.checks)} targets met; security/REPORT.md, {result.relative_to(REPO_ROOT)}"
    )
    return 0 if report.passed else 1


def guarded(report: Report, name: str, check) -> None:
    """A check that crashes is a missed target with its error, and the others still run."""
    try:
        check()
    except Exception as exc:  # reported, not swallowed: the run fails
        report.add(Check(name, "runs", False, {}, f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    sys.exit(main())
