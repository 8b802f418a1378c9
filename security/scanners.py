"""The scanners: static checks of the code and deployment files (bandit, check --deploy, gixy,
hadolint, systemd-analyze) and scanners against the running stack (HTTP Observatory,
testssl.sh, schemathesis)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from findings import Check, Report
from prod_stack import HOST, SecurityStack, api_token, django_shell
from toolbox import REPO_ROOT, tool

from harness import Client, run

OBSERVATORY_MIN_SCORE = 100
SYSTEMD_MAX_EXPOSURE = 5.0
SCHEMATHESIS_EXAMPLES = 25
# testssl.sh findings above LOW accepted here, each with the reason (shown in the report).
TESTSSL_ACCEPTED = {
    "cert_chain_of_trust": "the local stack's certificate is self-signed on purpose; "
    "production uses a CA-issued one (certbot, deploy/docker/certs)",
    "cert_trust": "self-signed local certificate, see cert_chain_of_trust",
    "cert_caIssuers": "self-signed local certificate has no issuer",
    "cert_crlDistributionPoints": "self-signed local certificate has no CRL",
    "cert_ocspURL": "self-signed local certificate has no OCSP responder",
    "OCSP_stapling": "needs a CA's OCSP responder; production enables ssl_stapling with "
    "a CA-issued certificate",
    "DNS_CAArecord": "loopback has no DNS zone",
    "cert_extlifeSpan": "local certificate, regenerated at will",
    "cert_revocation": "a self-signed certificate has no CRL or OCSP URI to revoke it by",
    "cipher_order": "Mozilla's intermediate profile (ssl_prefer_server_ciphers off): every "
    "offered cipher is AEAD with forward secrecy, so the client may pick (ChaCha20 on devices "
    "without AES hardware)",
    "BREACH": "HTTP compression is on, but no compressed page reflects a secret: Django masks "
    "the CSRF token anew in every response, session ids travel only in cookies, and pages echo "
    "no other secret (docs/security.md)",
}
TESTSSL_BAD = {"MEDIUM", "HIGH", "CRITICAL"}


# An inline justification: bandit's nosec comment or ruff's suppression of an S rule (ruff's S
# rules are bandit's, checked by `make lint`), followed by a dash and the reason, such as
# "S608 - names from the models; values are parameters".
JUSTIFIED = re.compile(r"#\s*(?:nosec\b|noqa:\s*S\d+)[^#\n]*?\s[-—:]\s*\w")


def _justified(finding: dict) -> bool:
    lines = Path(REPO_ROOT / finding["filename"]).read_text().splitlines()
    first, last = min(finding["line_range"]), max(finding["line_range"])
    # A multi-line statement carries its comment on its first or last line.
    return any(JUSTIFIED.search(lines[n - 1]) for n in range(first, min(last, len(lines)) + 1))


def check_bandit(report: Report) -> None:
    out = run(
        [tool("bandit"), "-r", "storefront", "-x", "*/tests/*,*/migrations/*", "-f", "json", "-q"],
        timeout=300,
    )
    findings = json.loads(out.stdout or "{}").get("results", [])
    serious = [f for f in findings if f["issue_severity"] in {"MEDIUM", "HIGH"}]
    unjustified = [f for f in serious if not _justified(f)]
    report.add(
        Check(
            "bandit",
            "0 medium/high findings without an inline justification (a reason after bandit's "
            "nosec or ruff's S-rule suppression)",
            not unjustified,
            {
                "medium_or_high": len(serious),
                "justified_inline": len(serious) - len(unjustified),
                "unjustified": len(unjustified),
                "low": len(findings) - len(serious),
            },
            "; ".join(
                f"{f['filename']}:{f['line_number']} {f['test_id']} {f['issue_text']}"
                for f in unjustified
            ),
        )
    )


def check_deploy(report: Report, env: dict[str, str]) -> None:
    out = run(
        [sys.executable, "-m", "storefront", "check", "--deploy", "--fail-level", "WARNING"],
        timeout=120,
        env=env,
    )
    issues = re.findall(r"^\?: \((\S+)\)", out.stdout + out.stderr, flags=re.M)
    report.add(
        Check(
            "manage.py check --deploy",
            "0 issues with production settings",
            out.returncode == 0,
            {"issues": len(issues)},
            (out.stdout + out.stderr)[-1500:] if out.returncode else "",
        )
    )


def check_gixy(report: Report, sec: SecurityStack) -> None:
    out = run([tool("gixy"), str(sec.nginx_prefix / "nginx.conf")], timeout=120)
    found = re.findall(r"^>> Problem: \[(\w+)\]", out.stdout, flags=re.M)
    report.add(
        Check(
            "gixy (production nginx config)",
            "0 problems",
            out.returncode == 0 and not found,
            {"problems": len(found)},
            out.stdout[-1500:] if found or out.returncode else "",
        )
    )


def check_hadolint(report: Report) -> None:
    out = run([tool("hadolint"), "deploy/docker/Dockerfile"], timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    report.add(
        Check(
            "hadolint (deploy/docker/Dockerfile)",
            "0 findings",
            out.returncode == 0,
            {"findings": len(lines)},
            "\n".join(lines[:20]),
        )
    )


def check_systemd(report: Report) -> None:
    levels = {}
    for unit in sorted((REPO_ROOT / "deploy" / "systemd").glob("*.service")):
        out = run(["systemd-analyze", "security", "--offline=true", str(unit)], timeout=60)
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout + out.stderr)
        levels[unit.name] = float(match.group(1)) if match else None
    worst = max((v for v in levels.values() if v is not None), default=None)
    report.add(
        Check(
            "systemd-analyze security",
            f"every unit's exposure < {SYSTEMD_MAX_EXPOSURE}",
            bool(levels)
            and all(v is not None and v < SYSTEMD_MAX_EXPOSURE for v in levels.values()),
            {"exposure": levels, "worst": worst},
        )
    )


def pages_to_scan(sec: SecurityStack) -> dict[str, str]:
    client = Client(sec.https_url)
    _, _, listing = client.request("GET", "/products/")
    product = re.search(rb'href="(/products/[-\w]+/)"', listing)
    static = re.search(rb'href="(/static/[^"]+\.css)"', listing)
    if not (product and static):
        raise RuntimeError("the listing shows no product or stylesheet link")
    return {
        "home": "/",
        "product page": product.group(1).decode(),
        "login": "/accounts/login/",
        "static file": static.group(1).decode(),
        "404 page": "/no-such-page/",
    }


def check_observatory(report: Report, sec: SecurityStack) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}}
    scores, failures = {}, {}
    for label, path in pages_to_scan(sec).items():
        out = run(
            [
                tool("httpobs-local-scan"), "--http-port", str(sec.http_port),
                "--https-port", str(sec.https_port), "--path", path, "--no-verify",
                "--format", "json", HOST,
            ],
            timeout=180,
            env=env,
        )  # fmt: skip
        try:
            result = json.loads(out.stdout)
        except json.JSONDecodeError:
            scores[label] = None
            failures[label] = (out.stdout + out.stderr)[-500:]
            continue
        scan = result.get("scan", {})
        scores[label] = {"score": scan.get("score"), "grade": scan.get("grade")}
        lost = {
            name: t.get("result")
            for name, t in result.get("tests", {}).items()
            if t.get("score_modifier", 0) < 0
        }
        if lost:
            failures[label] = lost
    passed = all(
        s is not None and (s["score"] or 0) >= OBSERVATORY_MIN_SCORE for s in scores.values()
    )
    report.add(
        Check(
            "Mozilla HTTP Observatory (httpobs-local-scan)",
            f"score >= {OBSERVATORY_MIN_SCORE} (A+) on each page",
            passed,
            {"pages": scores},
            json.dumps(failures) if failures else "",
        )
    )


def check_testssl(report: Report, sec: SecurityStack, workdir: Path) -> None:
    out_json = workdir / "testssl.json"
    binary = shutil.which("testssl") or shutil.which("testssl.sh") or "testssl"
    done = run(
        [
            binary, "--quiet", "--color", "0", "--warnings", "off", "--jsonfile", str(out_json),
            "--protocols", "--server-defaults", "--server-preference", "--vulnerable",
            "--headers", f"127.0.0.1:{sec.https_port}",
        ],
        timeout=900,
    )  # fmt: skip
    if not out_json.exists():
        report.add(Check("testssl.sh", "runs", False, {}, (done.stdout + done.stderr)[-1500:]))
        return
    findings = json.loads(out_json.read_text())
    offered = {
        f["id"]: f["finding"]
        for f in findings
        if f["id"] in {"SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"}
    }
    protocols_ok = (
        all("not offered" in offered.get(p, "") for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"))
        and offered.get("TLS1_2", "").startswith("offered")
        and offered.get("TLS1_3", "").startswith("offered")
    )
    severe = [f for f in findings if f.get("severity") in TESTSSL_BAD]
    accepted = [f for f in severe if f["id"] in TESTSSL_ACCEPTED]
    flagged = [f for f in severe if f["id"] not in TESTSSL_ACCEPTED]
    report.add(
        Check(
            "testssl.sh",
            "TLS 1.2/1.3 only; nothing above LOW except the justified exceptions",
            protocols_ok and not flagged,
            {
                "protocols": offered,
                "above_low": len(flagged),
                "accepted": {f["id"]: TESTSSL_ACCEPTED[f["id"]] for f in accepted},
            },
            "; ".join(f"{f['id']} {f['severity']}: {f['finding']}" for f in flagged),
        )
    )


def check_schemathesis(report: Report, sec: SecurityStack, workdir: Path) -> None:
    """App-level fuzzing: straight to gunicorn with the headers nginx adds (nginx's per-address
    rate limits would answer most generated requests with 429 and test nothing)."""
    customer_token = api_token(sec, "shopper00001", "shopper-2026")
    staff_login = django_shell(
        sec, "from storefront.seeding import DEMO_STAFF; print(*DEMO_STAFF)"
    ).split()
    staff_token = api_token(sec, staff_login[-2], staff_login[-1])
    base = ["-H", f"Host: {HOST}", "-H", "X-Forwarded-Proto: https", "-H", "X-Real-IP: 127.0.0.9"]
    # With a token, POST /api/auth/logout/ would revoke it mid-run and leave every later request
    # a 401: it is fuzzed anonymously only.
    keep_token = ["--exclude-path", "/api/auth/logout/"]
    for who, auth in (
        ("anonymous", []),
        ("customer token", ["-H", f"Authorization: Token {customer_token}", *keep_token]),
        ("staff token", ["-H", f"Authorization: Token {staff_token}", *keep_token]),
    ):
        slug = who.split()[0]
        junit = workdir / f"schemathesis-{slug}.xml"
        done = run(
            [
                tool("schemathesis"), "run", f"{sec.app_url}/api/schema/",
                "--checks", "not_a_server_error,status_code_conformance",
                "--max-examples", str(SCHEMATHESIS_EXAMPLES), "--seed", "1",
                "--generation-database", "none", "--max-time", "120",
                "--report", "junit", "--report-junit-path", str(junit),
                "--request-timeout", "20", *base, *auth,
            ],
            timeout=400,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        text = done.stdout + done.stderr
        # The failures, with reproduction commands cut short (fuzzed URLs run to kilobytes).
        failures_section = text.split("FAILURES", 1)[-1].split("WARNINGS", 1)[0]
        failures_text = "\n".join(line[:400] for line in failures_section.splitlines())
        failures = sorted(
            set(
                re.findall(
                    r"^\s*[-•]?\s*(Server error|Undocumented HTTP status code[^\n]*)",
                    text,
                    flags=re.M,
                )
            )
        )
        summary = re.findall(r"^.*(?:passed|failed|errored).*$", text, flags=re.M)
        report.add(
            Check(
                f"schemathesis ({who})",
                "0 server errors, 0 undocumented status codes",
                done.returncode == 0,
                {"exit": done.returncode, "problems": failures[:10]},
                (summary[-1] if summary else "")
                + ("" if done.returncode == 0 else "\n" + failures_text[:6000]),
            )
        )
