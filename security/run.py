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
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import stack  # noqa: E402
from stack import PROCESSES, Database, log  # noqa: E402

SECURITY_DIR = REPO_ROOT / "security"
RESULTS_DIR = SECURITY_DIR / "results"
SECURITY_VENV = Path(os.environ.get("SECURITY_VENV", REPO_ROOT / ".venv-security"))
VENV_BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("SECURITY_REDIS_URL", os.environ.get("REDIS_URL", "")) or (
    "redis://127.0.0.1:6379/0"
)
HOST = "localhost"  # the name the scanners use; ALLOWED_HOSTS has it
OBSERVATORY_MIN_SCORE = 100
SYSTEMD_MAX_EXPOSURE = 5.0
SLOW_CONNECTIONS = 1000
SLOW_SECONDS = 30
NORMAL_CLIENT_ADDRESS = "127.0.0.2"
MIN_NORMAL_SUCCESS = 0.99
BRUTE_FORCE_ATTEMPTS = 30
FLOOD_REQUESTS = 200
RACE_STOCK = 5
RACE_BUYERS = 20
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


@dataclass
class Check:
    name: str
    target: str
    passed: bool
    figures: dict = field(default_factory=dict)
    details: str = ""


@dataclass
class SecurityStack:
    env: dict[str, str]
    app_url: str  # gunicorn, direct (setup and app-level fuzzing)
    http_port: int
    https_port: int
    nginx_prefix: Path
    cache_prefix: str

    @property
    def https_url(self) -> str:
        return f"https://{HOST}:{self.https_port}"


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


def run(args: list[str], *, timeout: float, env: dict[str, str] | None = None, **kw):
    return subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def tool(name: str) -> str:
    """A scanner from .venv-security, else the project's venv, else PATH."""
    for directory in (SECURITY_VENV / "bin", VENV_BIN):
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run scripts/security_tools.sh")
    return found


# --- HTTP with cookies, over TLS without verification (the stack's self-signed certificate) ---


class Client:
    def __init__(
        self,
        base: str,
        *,
        source: str | None = None,
        headers: dict | None = None,
        origin: str | None = None,
    ):
        self.base = base
        # What a browser would send as Origin: the address the user sees (nginx's, not
        # gunicorn's when a check goes straight to gunicorn).
        self.origin = origin or base
        self.source = source
        self.cookies = SimpleCookie()
        self.headers = headers or {}

    def request(self, method: str, path: str, *, body=None, headers=None, timeout: float = 15):
        scheme, rest = self.base.split("://", 1)
        host, _, port = rest.partition(":")
        source = (self.source, 0) if self.source else None
        if scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(
                host, int(port), timeout=timeout, context=context, source_address=source
            )
        else:
            conn = http.client.HTTPConnection(
                host, int(port), timeout=timeout, source_address=source
            )
        sent = {**self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            data = resp.read()
            for header in resp.headers.get_all("Set-Cookie") or []:
                self.cookies.load(header)
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def form_post(self, path: str, form: dict[str, str]):
        _, _, page = self.request("GET", path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        fields = {"csrfmiddlewaretoken": token.group(1).decode() if token else "", **form}
        return self.request(
            "POST",
            path,
            body=urlencode(fields),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.origin,
                "Referer": f"{self.origin}{path}",
            },
        )


# --- the stack ---------------------------------------------------------------------------------


def start_stack(workdir: Path, run_id: str) -> tuple[SecurityStack, Database]:
    db = Database(f"security_{os.getpid()}").create()
    env = stack.app_env(
        database_url=db.url,
        var_dir=workdir / "var",
        static_root=workdir / "static",
        redis_url=REDIS_URL,
        cache_prefix=run_id,
    )
    log("migrating, seeding (200 products, 300 orders, 40 shoppers), collecting static files")
    stack.storefront_command(["migrate", "--noinput", "--verbosity", "0"], env)
    stack.seed(env, products=200, orders=300, users=40)
    stack.storefront_command(["collectstatic", "--noinput", "--verbosity", "0"], env)
    production = dict(env)
    production.update(
        STOREFRONT_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        # Only nginx reaches this gunicorn (and the direct checks below, which send what nginx
        # sends): trust its client address and scheme headers.
        STOREFRONT_PROXY_CLIENT_IP_HEADER="X-Real-IP",
        STOREFRONT_BEHIND_PROXY="1",
    )
    gunicorn = stack.start_gunicorn(production, workdir / "gunicorn.log", workers=3)
    prefix = workdir / "nginx"
    # The same self-signed certificate `make run` makes (with subjectAltName, 825 days).
    tls = workdir / "tls"
    run([str(REPO_ROOT / "scripts" / "make_dev_cert.sh"), str(tls)], timeout=60)
    http_port = stack.render_nginx(
        prefix,
        gunicorn.url.removeprefix("http://"),
        workdir / "static",
        workdir / "var" / "media",
        NGINX_PROFILE="production",
        NGINX_SERVER_NAME=HOST,
        NGINX_LISTEN_HTTPS=f"127.0.0.1:{(https_port := stack.free_port())}",
        NGINX_TLS_CERT=str(tls / "dev-cert.pem"),
        NGINX_TLS_KEY=str(tls / "dev-key.pem"),
    )
    (workdir / "var" / "media").mkdir(parents=True, exist_ok=True)
    args = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    args += ["-e", str(prefix / "logs" / "error.log")]
    checked = run([*args, "-t", "-q"], timeout=30)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{checked.stderr}")
    proc = PROCESSES.spawn(
        [*args, "-g", "daemon off;"], env=dict(os.environ), log_path=prefix / "nginx.out"
    )
    deadline = time.monotonic() + 30
    probe = Client(f"http://127.0.0.1:{http_port}")
    while True:
        try:
            if probe.request("GET", "/nginx-healthz")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"nginx did not start:\n{(prefix / 'logs' / 'error.log').read_text()}"
            )
        time.sleep(0.2)
    log(f"stack: nginx (production profile) http :{http_port} https :{https_port} → {gunicorn.url}")
    return (
        SecurityStack(
            env=production,
            app_url=gunicorn.url,
            http_port=http_port,
            https_port=https_port,
            nginx_prefix=prefix,
            cache_prefix=run_id,
        ),
        db,
    )


def app_client(sec: SecurityStack) -> Client:
    """gunicorn directly, with the headers nginx would add (for setup and app-level fuzzing)."""
    return Client(
        sec.app_url,
        headers={"Host": HOST, "X-Forwarded-Proto": "https", "X-Real-IP": "127.0.0.1"},
        origin=f"https://{HOST}",
    )


def django_shell(sec: SecurityStack, code: str) -> str:
    done = run([sys.executable, "-m", "storefront", "shell", "-c", code], timeout=120, env=sec.env)
    if done.returncode != 0:
        raise RuntimeError(f"storefront shell failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def api_token(sec: SecurityStack, username: str, password: str) -> str:
    status, _, body = app_client(sec).request(
        "POST",
        "/api/auth/token/",
        body=json.dumps({"username": username, "password": password}),
        headers={"Content-Type": "application/json"},
    )
    if status not in (200, 201):
        raise RuntimeError(f"token for {username}: {status} {body[:200]!r}")
    return json.loads(body)["token"]


# --- static checks -----------------------------------------------------------------------------


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


# --- scanners against the stack ----------------------------------------------------------------


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


def normal_client(sec: SecurityStack, stop: threading.Event, tally: Counter) -> None:
    """A shopper on another address: fetches pages one after another during the attack."""
    client = Client(f"https://127.0.0.1:{sec.https_port}", source=NORMAL_CLIENT_ADDRESS)
    while not stop.is_set():
        try:
            status = client.request("GET", "/products/", headers={"Host": HOST}, timeout=10)[0]
            tally["ok" if status == 200 else f"status {status}"] += 1
        except OSError as exc:
            tally[type(exc).__name__] += 1
        time.sleep(0.2)


def check_slowhttp(report: Report, sec: SecurityStack, workdir: Path) -> None:
    for mode, flag in (("slowloris (slow headers)", "-H"), ("slow body (R-U-Dead-Yet)", "-B")):
        stop, tally = threading.Event(), Counter()
        shopper = threading.Thread(target=normal_client, args=(sec, stop, tally), daemon=True)
        shopper.start()
        stats = workdir / f"slowhttptest{flag}"
        done = run(
            [
                "slowhttptest", flag, "-c", str(SLOW_CONNECTIONS), "-r", "200", "-i", "10",
                "-l", str(SLOW_SECONDS), "-x", "24", "-p", "3", "-t", "POST" if flag == "-B" else "GET",
                "-u", f"https://127.0.0.1:{sec.https_port}/accounts/login/", "-g", "-o", str(stats),
            ],
            timeout=SLOW_SECONDS + 120,
        )  # fmt: skip
        stop.set()
        shopper.join(timeout=15)
        total = sum(tally.values())
        success = tally["ok"] / total if total else 0.0
        plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
        summary = re.findall(r"pending:[^\n]*", plain)
        report.add(
            Check(
                f"slowhttptest {mode}",
                f"{SLOW_CONNECTIONS} slow connections; a normal client on "
                f"{NORMAL_CLIENT_ADDRESS} keeps >= {MIN_NORMAL_SUCCESS:.0%} success",
                total > 10 and success >= MIN_NORMAL_SUCCESS,
                {"normal_client_requests": total, "success": round(success, 4), **tally},
                " | ".join(summary[-4:]),
            )
        )


def check_schemathesis(report: Report, sec: SecurityStack, workdir: Path) -> None:
    """App-level fuzzing: straight to gunicorn with the headers nginx adds (nginx's per-address
    rate limits would answer most generated requests with 429 and test nothing)."""
    customer_token = api_token(sec, "shopper00001", "shopper-2026")
    staff_login = django_shell(
        sec, "from storefront.orders.seeding import DEMO_STAFF; print(*DEMO_STAFF)"
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


# --- scripted attacks --------------------------------------------------------------------------


def attack_stock_race(report: Report, sec: SecurityStack) -> None:
    slug = django_shell(
        sec,
        "from storefront.catalog.models import Product;"
        "p = Product.objects.filter(is_active=True).order_by('id').first();"
        f"Product.objects.filter(pk=p.pk).update(stock={RACE_STOCK});"
        "from storefront import caching; caching.bump_namespace('catalog');"
        "print(p.slug)",
    ).splitlines()[-1]
    units_sold = (
        "from storefront.catalog.models import Product; from storefront.orders.models import OrderLine;"
        f"p = Product.objects.get(slug={slug!r});"
        "print(p.stock, sum(OrderLine.objects.filter(product=p).values_list('quantity', flat=True)))"
    )
    sold_before = int(django_shell(sec, units_sold).split()[-1])
    tokens = [api_token(sec, f"shopper{n:05d}", "shopper-2026") for n in range(1, RACE_BUYERS + 1)]
    barrier = threading.Barrier(RACE_BUYERS)

    def buy(token: str) -> int:
        client = Client(sec.https_url, headers={"Host": f"{HOST}:{sec.https_port}"})
        barrier.wait(timeout=30)
        return client.request(
            "POST",
            "/api/orders/",
            body=json.dumps({"items": [{"product": slug, "quantity": 1}]}),
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
            timeout=30,
        )[0]

    with concurrent.futures.ThreadPoolExecutor(RACE_BUYERS) as pool:
        statuses = Counter(pool.map(buy, tokens))
    counts = django_shell(sec, units_sold).split()
    stock_left, sold = int(counts[-2]), int(counts[-1]) - sold_before
    placed = statuses.get(201, 0)
    report.add(
        Check(
            "attack: stock race",
            f"{RACE_BUYERS} concurrent buyers of a product with stock {RACE_STOCK} "
            "(API through nginx): exactly that many orders, 0 oversold, the rest a clear 409",
            placed == RACE_STOCK
            and stock_left == 0
            and statuses.get(409, 0) == RACE_BUYERS - RACE_STOCK,
            {"statuses": dict(statuses), "stock_left": stock_left, "units_in_orders": sold},
        )
    )


def redis_keys(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        return sum(1 for _ in client.scan_iter(match=f"*{prefix}*", count=1000))
    finally:
        client.close()


def attack_cache_flood(report: Report, sec: SecurityStack) -> None:
    client = app_client(sec)
    client.request("GET", "/products/")  # the canonical page, cached once
    before = redis_keys(sec.cache_prefix)
    statuses = Counter(
        client.request("GET", f"/products/?junk={n}")[0] for n in range(FLOOD_REQUESTS)
    )
    added = redis_keys(sec.cache_prefix) - before
    report.add(
        Check(
            "attack: cache flood",
            f"{FLOOD_REQUESTS} anonymous requests with junk query strings add at most 1 key",
            added <= 1,
            {"statuses": dict(statuses), "redis_keys_added": added},
        )
    )


def attack_brute_force(report: Report, sec: SecurityStack) -> None:
    # Through nginx: its auth zone (5/min per address, burst 5) answers the rest with 429.
    client = Client(sec.https_url, headers={"Host": f"{HOST}:{sec.https_port}"})
    statuses = Counter()
    started = time.monotonic()
    for n in range(BRUTE_FORCE_ATTEMPTS):
        statuses[
            client.form_post("/admin/login/", {"username": "staff", "password": f"guess{n}"})[0]
        ] += 1
    elapsed = time.monotonic() - started
    reached = BRUTE_FORCE_ATTEMPTS - statuses.get(429, 0)
    report.add(
        Check(
            "attack: brute force /admin/login/ through nginx",
            f"{BRUTE_FORCE_ATTEMPTS} wrong passwords: at most 6 reach Django (5/min + burst 5)",
            reached <= 6,
            {"statuses": dict(statuses), "reached_django": reached, "seconds": round(elapsed, 1)},
        )
    )
    # Past nginx (many addresses, or a slow attacker): the account locks in Django itself, and
    # a forged X-Forwarded-For does not reset it.
    victim = "shopper00030"
    direct = app_client(sec)
    statuses = Counter()
    for n in range(12):
        direct.headers["X-Forwarded-For"] = f"203.0.113.{n}"
        statuses[
            direct.form_post("/accounts/login/", {"username": victim, "password": f"guess{n}"})[0]
        ] += 1
    right = direct.form_post("/accounts/login/", {"username": victim, "password": "shopper-2026"})
    report.add(
        Check(
            "attack: brute force one account past nginx (django-axes)",
            "locked after the failure limit: the right password is refused (429) while locked, "
            "forged X-Forwarded-For does not help",
            right[0] == 429,
            {"wrong_password_statuses": dict(statuses), "right_password_status": right[0]},
        )
    )


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(CHECKS)}")
    args = parser.parse_args()
    chosen = [c for c in CHECKS if not args.only or c in args.only.split(",")]
    PROCESSES.install()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    started = time.monotonic()
    report = Report()
    workdir = stack.temp_dir(f"storefront-security-{stamp}-")
    run_id = f"sec{os.getpid()}"
    db = None
    try:
        production_env = stack.app_env(
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
    finally:
        PROCESSES.stop_all()
        if db:
            db.drop()
        stack.redis_delete_prefix(REDIS_URL, run_id)
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
