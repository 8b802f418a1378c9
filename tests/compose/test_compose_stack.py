"""The compose stack (deploy/docker/compose.yaml) built and run for real: `make compose-test`.

Images are built from this checkout on the local base images (deploy/docker/build_bases.sh,
which `make compose-test` runs first: no registry here), the whole stack is brought up with
its own project name, ports on 127.0.0.1, an env file made from env.example and a self-signed
certificate, and everything is checked through the compose nginx: what users reach. Email goes
to a real SMTP sink on this machine, which the worker reaches as host.docker.internal.

The tests run in file order on one stack (each leaves it as it found it, with one web replica
more or less said where): services healthy; static files; HTTP, HTTPS and ACME; a browser
login and checkout with the confirmation email; certificate renewal; `--scale web=3`; a
rolling replacement under load; down and up keeping the data. Figures (image sizes, start
times, the load's latencies) go to test-output/compose/figures.json and docs/deploy-compose.md.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from conftest import skip_or_fail
from harness.processes import REPO_ROOT, free_port
from harness.served import mail_text
from harness.smtp import SmtpSink, serving
from storefront.seeding import DEMO_CUSTOMER
from tests.stack.conftest import chromium, new_watched_page  # noqa: F401 (chromium: fixture)
from tests.stack.test_browser import add_first_in_stock_product, log_in

pytestmark = [pytest.mark.stack, pytest.mark.compose]

DOCKER_DIR = REPO_ROOT / "deploy" / "docker"
OUTPUT = REPO_ROOT / "test-output" / "compose"
PROJECT = "sfcomposetest"
# The images build_bases.sh makes, in place of the official ones (no registry here).
LOCAL_IMAGES = {
    "PYTHON_IMAGE": "local/python:3.11-bookworm",
    "NGINX_IMAGE": "local/nginx:1.22-bookworm",
    "POSTGRES_IMAGE": "local/postgres:15-bookworm",
    "REDIS_IMAGE": "local/redis:7.0-bookworm",
    "MEMCACHED_IMAGE": "local/memcached:1.6-bookworm",
}
APP_IMAGE = "storefront:0.1.0"
HEALTH_TIMEOUT = 180
# Users of each image (numeric, as `USER` gives them); nginx's master is root and its workers
# www-data, as in the official image.
IMAGE_USERS = {"web": "10001:10001", "worker": "10001:10001", "beat": "10001:10001",
               "postgres": "10070:10070", "redis": "10079:10079", "cache": "10079:10079",
               "memcached": "11211:11211"}  # fmt: skip
FIGURES: dict[str, object] = {}


@dataclass
class Stack:
    """One compose project of deploy/docker/compose.yaml, and where users reach it."""

    env: dict[str, str]
    http_port: int
    https_port: int
    smtp: SmtpSink
    work: Path
    orders: list[str] = field(default_factory=list)  # numbers of orders placed by the tests

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def netloc(self) -> str:  # what tests.stack.conftest's WatchedPage calls the server
        return f"127.0.0.1:{self.https_port}"

    @property
    def files(self) -> list[str]:
        """compose.yaml, then the test's override (the SMTP sink's host name)."""
        return ["-f", str(DOCKER_DIR / "compose.yaml"), "-f", str(self.work / "override.yaml")]

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        command = ["docker-compose", "--env-file", str(self.work / "compose.env"), *self.files]
        done = subprocess.run(
            [*command, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def ids(self, service: str) -> list[str]:
        """Container ids of `service` (every service's: ""), stopped ones included."""
        return self.compose("ps", "-q", *([service] if service else [])).split()

    def log_tail(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False)

    def wait_answering(self) -> float:
        """When (monotonic) the home page first answered 200 through nginx over HTTPS."""
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if get(self, "/")[0] == 200:
                    return time.monotonic()
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise AssertionError(f"the site never answered:\n{self.log_tail()}")

    def wait_healthy(self, service: str | None = None) -> float:
        """Seconds until every container of `service` (of the project: None) is healthy, or
        has exited with 0 (the one-off migrate service)."""
        started = time.monotonic()
        deadline = started + HEALTH_TIMEOUT
        while True:
            states = container_states(self.ids(service) if service else self.ids(""))
            waiting = {name: s for name, s in states.items() if s not in {"healthy", "exited 0"}}
            if not waiting:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {HEALTH_TIMEOUT}s: {waiting}\n"
                                     f"{self.log_tail()}")  # fmt: skip
            time.sleep(0.5)


def container_states(ids: list[str]) -> dict[str, str]:
    """name -> healthy / starting / unhealthy / exited N / running (no healthcheck)."""
    if not ids:
        return {}
    out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True)
    states = {}
    for item in json.loads(out.stdout):
        state = item["State"]
        if state["Status"] == "exited":
            states[item["Name"].lstrip("/")] = f"exited {state['ExitCode']}"
        elif state.get("Health"):
            states[item["Name"].lstrip("/")] = state["Health"]["Status"]
        else:
            states[item["Name"].lstrip("/")] = state["Status"]
    return states


def inspect(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True)
    return json.loads(out.stdout)[0]


def docker_logs(container: str) -> str:
    done = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    return done.stdout + done.stderr


def self_signed(directory: Path, name: str) -> str:
    """fullchain.pem + privkey.pem for 127.0.0.1 in `directory`; the certificate's SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem"),
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    pem = (directory / "fullchain.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def served_certificate(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def docker0_address() -> str:
    """The host's address on Docker's default bridge: what host-gateway names in containers."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True,
                         text=True, check=False).stdout  # fmt: skip
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    if not match:
        skip_or_fail("no docker0 bridge: is dockerd running? (make compose-test starts it)")
    return match.group(1)  # type: ignore[union-attr]


def app_env_file(path: Path, https_port: int, smtp: SmtpSink) -> None:
    """env.example with the site's values for this machine: what a user fills in."""
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": f"https://127.0.0.1:{https_port}",
        "STOREFRONT_SITE_URL": f"https://127.0.0.1:{https_port}",
        "POSTGRES_PASSWORD": "compose-test-password",
        "DATABASE_URL": "postgres://storefront:compose-test-password@postgres:5432/storefront",
        "NGINX_SERVER_NAME": "127.0.0.1 localhost",
        "EMAIL_URL": f"smtp://host.docker.internal:{smtp.port}",
        # All load comes from one address here: the per-address limits would answer 429s.
        "NGINX_RATE_GENERAL": "1000r/s",
        "NGINX_RATE_API": "1000r/s",
        "STOREFRONT_METRICS_TOKEN": secrets.token_urlsafe(24),
    }
    lines, seen = [], set()
    for line in (DOCKER_DIR / "env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if line and not line.startswith("#") and "=" in line and name in values:
            line = f"{name}={values[name]}"
            seen.add(name)
        lines.append(line)
    lines += [f"{name}={value}" for name, value in values.items() if name not in seen]
    path.write_text("\n".join(lines) + "\n")


OVERRIDE = """\
# make compose-test: the worker (and web, for password resets) reach the test's SMTP sink on
# the host as host.docker.internal.
services:
  web:
    extra_hosts: ["host.docker.internal:host-gateway"]
  worker:
    extra_hosts: ["host.docker.internal:host-gateway"]
"""


def require_engine_and_images(images: list[str]) -> None:
    """The tools, a running Docker engine and the local base `images`: skip (or fail in CI)."""
    for tool in ("docker", "docker-compose", "openssl"):
        if not shutil.which(tool):
            skip_or_fail(f"{tool} not installed (apt-get install docker.io docker-compose)")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        skip_or_fail("the Docker engine is not running (make compose-test starts it)")
    for image in images:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            skip_or_fail(f"no image {image}: run deploy/docker/build_bases.sh")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_engine_and_images(list(LOCAL_IMAGES.values()))
    work = tmp_path_factory.mktemp("compose")
    http_port, https_port = free_port(), free_port()
    self_signed(work / "certs", "storefront-compose-test")
    with serving(SmtpSink(host=docker0_address(), port=free_port())) as smtp:
        app_env_file(work / "app.env", https_port, smtp)
        compose_env = {
            "COMPOSE_PROJECT_NAME": PROJECT,
            "STOREFRONT_ENV_FILE": str(work / "app.env"),
            "STOREFRONT_CERTS_DIR": str(work / "certs"),
            "NGINX_PUBLISH_ADDRESS": "127.0.0.1",
            "NGINX_HTTP_PORT": str(http_port),
            "NGINX_HTTPS_PORT": str(https_port),
            "POSTGRES_PASSWORD": "compose-test-password",
            "STOREFRONT_RELEASE": "compose-test-1",
            **LOCAL_IMAGES,
        }
        (work / "compose.env").write_text("".join(f"{k}={v}\n" for k, v in compose_env.items()))
        (work / "override.yaml").write_text(OVERRIDE)
        env = {**os.environ, **compose_env}
        stack = Stack(env=env, http_port=http_port, https_port=https_port, smtp=smtp, work=work)
        stack.compose("down", "-v", "--remove-orphans", check=False)  # an earlier run's leftovers
        try:
            started = time.monotonic()
            stack.compose("build", "web", "certbot", timeout=1800)
            FIGURES["build_seconds"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            stack.compose("up", "-d", timeout=600)
            FIGURES["site_answers_after_seconds"] = round(stack.wait_answering() - started, 1)
            stack.wait_healthy()
            FIGURES["up_to_healthy_seconds"] = round(time.monotonic() - started, 1)
            stack.compose("exec", "-T", "web", "storefront", "seed", "--products", "60",
                          "--orders", "20", "--users", "5", "--seed", "1",
                          "--allow-production")  # fmt: skip
            yield stack
        finally:
            (OUTPUT / "logs.txt").parent.mkdir(parents=True, exist_ok=True)
            (OUTPUT / "logs.txt").write_text(stack.compose("logs", "--no-color", check=False))
            started = time.monotonic()
            stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
            FIGURES["down_seconds"] = round(time.monotonic() - started, 1)
            (OUTPUT / "figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


def https(stack: Stack) -> http.client.HTTPSConnection:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", stack.https_port, timeout=15, context=context)


def get(stack: Stack, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    conn = https(stack)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        lines = [(k.lower(), v) for k, v in response.getheaders()]
        body = response.read()
        return response.status, {"_lines": lines, **dict(lines)}, body
    finally:
        conn.close()


# --- the stack as it comes up ---------------------------------------------------------------


def test_every_service_is_healthy_unprivileged_and_its_image_small(stack: Stack) -> None:
    states = container_states(stack.ids(""))
    expected = {"nginx", "web", "worker", "beat", "postgres", "redis", "cache", "memcached",
                "certbot", "migrate"}  # fmt: skip
    assert {name.split("_")[1] for name in states} == expected
    for name, state in states.items():
        wanted = "exited 0" if "_migrate_" in name else "healthy"
        assert state == wanted, (name, state)
    for service, user in IMAGE_USERS.items():
        (container,) = stack.ids(service)
        assert inspect(container)["Config"]["User"] == user, service
        # The process really runs as that user (not root through an entrypoint).
        uid = stack.compose("exec", "-T", service, "id", "-u").strip()
        assert uid == user.split(":")[0], service
    sizes = {}
    for image in [APP_IMAGE, *LOCAL_IMAGES.values(), "storefront-certbot:2.1.0-bookworm"]:
        sizes[image] = round(inspect(image)["Size"] / 1e6)
    FIGURES["image_mb"] = sizes
    # Debian's Python, the virtualenv and the static files, nothing else (439 MB before the
    # static files were kept only once).
    assert sizes[APP_IMAGE] < 400, sizes


def test_static_files_come_from_nginx_compressed_with_cache_headers(stack: Stack) -> None:
    status, _, body = get(stack, "/")
    assert status == 200
    match = re.search(rb'/static/css/[^"]+\.[0-9a-f]{12}\.css', body)
    assert match, "the home page links no hashed stylesheet"
    path = match.group().decode()
    status, headers, _ = get(stack, path, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("content-encoding") == "gzip"
    cache_control = [v for k, v in headers["_lines"] if k == "cache-control"]
    assert cache_control == ["public, max-age=31536000, immutable"]
    # nginx served it from the static volume: no web replica saw it.
    for container in stack.ids("web"):
        assert path not in docker_logs(container)


def test_plain_http_redirects_to_https_and_answers_acme_challenges(stack: Stack) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    conn.request("GET", "/products/")
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("location") == f"https://127.0.0.1:{stack.https_port}/products/"
    conn.close()
    token = uuid.uuid4().hex
    challenges = "/var/www/acme/.well-known/acme-challenge"
    script = f"mkdir -p {challenges} && printf %s {token}-key > {challenges}/{token}"
    stack.compose("exec", "-T", "certbot", "sh", "-c", script)
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    conn.request("GET", f"/.well-known/acme-challenge/{token}")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, f"{token}-key".encode())


def test_browser_logs_in_checks_out_and_the_worker_sends_the_email(
    stack: Stack,
    chromium: Browser,  # noqa: F811
) -> None:
    context, watched = new_watched_page(chromium, stack, "compose-checkout")  # type: ignore[arg-type]
    try:
        page = watched.page
        log_in(watched, *DEMO_CUSTOMER)  # a form POST with the browser's own Origin header
        name = add_first_in_stock_product(watched)
        page.locator("a#checkout-link").click()
        checkout = page.locator("#checkout-form")
        checkout.locator("[name=shipping_address]").fill("1 Compose Street\n12345 Dockerville")
        checkout.locator("button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/orders/[^/]+/$"))
        number = re.search(r"Order\s+(\S+)", page.locator("h1").inner_text()).group(1)  # type: ignore[union-attr]
        expect(page.locator("main table")).to_contain_text(name)
        watched.assert_clean()
        stack.orders.append(number)
    finally:
        context.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mails = [m for m in stack.smtp.received() if number in mail_text(m)]
        if mails:
            break
        time.sleep(0.2)
    assert len(mails) == 1, f"no confirmation for {number}:\n{stack.log_tail()}"
    assert f"https://127.0.0.1:{stack.https_port}/orders/" in mail_text(mails[0])


def test_renewal_hook_installs_the_certificate_and_nginx_reloads(stack: Stack) -> None:
    (nginx,) = stack.ids("nginx")
    started_at = inspect(nginx)["State"]["StartedAt"]
    before = served_certificate(stack.https_port)
    lineage = stack.work / "renewed"
    fingerprint = self_signed(lineage, "storefront-renewed")
    assert fingerprint != before
    (certbot,) = stack.ids("certbot")
    subprocess.run(["docker", "exec", certbot, "mkdir", "-p", "/etc/letsencrypt/live/renewed"],
                   check=True)  # fmt: skip
    for name in ("fullchain.pem", "privkey.pem"):
        subprocess.run(["docker", "cp", str(lineage / name),
                        f"{certbot}:/etc/letsencrypt/live/renewed/{name}"], check=True)  # fmt: skip
    # What certbot runs after a renewal (`--deploy-hook`), with the lineage it renewed.
    stack.compose("exec", "-T", "-e", "RENEWED_LINEAGE=/etc/letsencrypt/live/renewed",
                  "certbot", "certbot-deploy-hook")  # fmt: skip
    deadline = time.monotonic() + 10
    while served_certificate(stack.https_port) != fingerprint:
        assert time.monotonic() < deadline, "nginx still serves the old certificate"
        time.sleep(0.2)
    assert inspect(nginx)["State"]["StartedAt"] == started_at  # reloaded, not restarted
    assert "No renewals were attempted" in docker_logs(certbot)  # the loop's `certbot renew`


# --- scaling, rolling replacement, restart ---------------------------------------------------


def utc_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (Docker's has nanoseconds)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    assert match, text
    whole = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return whole.timestamp() + float(f"0.{match.group(2) or 0}")


def seconds_to_listen(container: str) -> float:
    """From the container's start to gunicorn's "Listening at" (entrypoint checks included)."""
    started = utc_time(inspect(container)["State"]["StartedAt"])
    for line in docker_logs(container).splitlines():
        if "Listening at" in line and line.startswith("{"):
            return utc_time(json.loads(line)["time"]) - started
    raise AssertionError(f"{container[:12]}: gunicorn never said it was listening")


def replica_of_requests(stack: Stack, count: int, path: str) -> Counter:
    """Send `count` requests; which web container answered each (by its X-Request-ID)."""
    ids = []
    for _ in range(count):
        status, headers, _ = get(stack, path)
        assert status == 200
        ids.append(headers["x-request-id"])
    served: Counter = Counter()
    logs = {c: docker_logs(c) for c in stack.ids("web")}
    for request_id in ids:
        owners = [c for c, text in logs.items() if request_id in text]
        assert len(owners) == 1, (request_id, owners)
        served[owners[0]] += 1
    return served


def test_scale_web_to_three_spreads_requests_follows_replacements_migrates_once(
    stack: Stack,
) -> None:
    (nginx,) = stack.ids("nginx")
    nginx_started = inspect(nginx)["State"]["StartedAt"]
    started = time.monotonic()
    stack.compose("up", "-d", "--no-deps", "--scale", "web=3", "web")
    stack.wait_healthy("web")
    FIGURES["two_more_replicas_healthy_seconds"] = round(time.monotonic() - started, 1)
    replicas = stack.ids("web")
    assert len(replicas) == 3
    FIGURES["web_start_to_listening_seconds"] = [round(seconds_to_listen(c), 1) for c in replicas]
    time.sleep(3)  # nginx's resolver answers are valid 2 s
    served = replica_of_requests(stack, 60, "/api/products/")
    assert set(served) == set(replicas), served
    assert min(served.values()) >= 10, served  # round robin: ~20 each
    # Migrations ran once, in the one-off service; the replicas skipped them.
    (migrate,) = stack.ids("migrate")
    assert "Applying" in docker_logs(migrate)
    for container in replicas:
        logs = docker_logs(container)
        assert "Applying" not in logs and "entrypoint: prepared" not in logs
    # A replica replaced (a new container, a new address): nginx, not reloaded, follows.
    subprocess.run(["docker", "rm", "-f", replicas[0]], check=True, capture_output=True)
    stack.compose("up", "-d", "--no-deps", "--scale", "web=3", "web")
    stack.wait_healthy("web")
    (new,) = set(stack.ids("web")) - set(replicas)
    time.sleep(3)
    served = replica_of_requests(stack, 60, "/api/products/")
    assert served[new] >= 10, served
    assert replicas[0] not in served
    assert inspect(nginx)["State"]["StartedAt"] == nginx_started


@dataclass
class Load:
    """Requests in a loop from `threads` threads, each paced to `rate` per second, over HTTPS
    keep-alive connections like a browser's: replicas coming and going behind nginx must not
    break a client's open connection either. (faults/load.py is the open-loop generator of
    `make faults`: a new plain-HTTP connection per request, latency from the scheduled time.)"""

    stack: Stack
    threads: int = 4
    rate: float = 10.0
    paths: tuple[str, ...] = ("/api/products/", "/products/", "/", "/healthz")
    results: list[tuple[float, float, str]] = field(default_factory=list)  # start, seconds, status
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, n: int) -> None:
        conn = https(self.stack)
        i = n
        while not self._stop.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            began = time.monotonic()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = https(self.stack)
            self.results.append((began, time.monotonic() - began, outcome))
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - began)))
        conn.close()

    def summary(self) -> dict[str, object]:
        times = sorted(seconds for _, seconds, _ in self.results)
        outcomes = Counter(outcome for _, _, outcome in self.results)
        cut = statistics.quantiles(times, n=100) if len(times) > 1 else [0.0] * 99
        return {
            "requests": len(times),
            "outcomes": dict(outcomes),
            "p50_ms": round(cut[49] * 1000, 1),
            "p99_ms": round(cut[98] * 1000, 1),
            "max_ms": round(times[-1] * 1000, 1) if times else 0,
        }


def test_rolling_replacement_under_load_fails_no_request(stack: Stack) -> None:
    # A new release: the same code with another STOREFRONT_RELEASE baked in.
    stack.env["STOREFRONT_RELEASE"] = "compose-test-2"
    stack.compose("build", "web", timeout=1800)
    old = set(stack.ids("web"))
    load = Load(stack)
    load.start()
    time.sleep(5)
    started = time.monotonic()
    done = subprocess.run(
        [str(DOCKER_DIR / "roll_web.sh"), *stack.files],
        env={**stack.env, "COMPOSE": f"docker-compose --env-file {stack.work / 'compose.env'}"},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    roll_seconds = time.monotonic() - started
    time.sleep(5)
    load.stop()
    assert done.returncode == 0, done.stderr
    summary = load.summary()
    FIGURES["rolling_replacement"] = {"replicas": len(old), "seconds": round(roll_seconds, 1),
                                      **summary}  # fmt: skip
    assert summary["outcomes"] == {"200": summary["requests"]}, summary
    assert summary["requests"] > 200, summary
    new = set(stack.ids("web"))
    assert len(new) == len(old) and not new & old
    for container in new:
        assert "STOREFRONT_RELEASE=compose-test-2" in inspect(container)["Config"]["Env"]


def test_down_and_up_keeps_orders_and_sessions(stack: Stack, chromium: Browser) -> None:  # noqa: F811
    context, watched = new_watched_page(chromium, stack, "compose-restart")  # type: ignore[arg-type]
    try:
        page = watched.page
        log_in(watched, *DEMO_CUSTOMER)
        page.goto("/orders/")
        for number in stack.orders:
            expect(page.locator("main")).to_contain_text(number)
        started = time.monotonic()
        stack.compose("down", "--timeout", "20")
        FIGURES["down_keep_volumes_seconds"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        stack.compose("up", "-d")
        FIGURES["up_again_site_answers_seconds"] = round(stack.wait_answering() - started, 1)
        stack.wait_healthy()
        FIGURES["up_again_to_healthy_seconds"] = round(time.monotonic() - started, 1)
        # The same browser, its session cookie from before: still signed in (sessions live in
        # the persisted Redis), the orders still there (PostgreSQL's volume).
        page.goto("/orders/")
        expect(page.locator("form[action='/accounts/logout/']")).to_be_visible()
        for number in stack.orders:
            expect(page.locator("main")).to_contain_text(number)
        watched.assert_clean()
    finally:
        context.close()
