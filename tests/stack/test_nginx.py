"""nginx in front of gunicorn, config rendered from deploy/nginx/ by scripts/render_nginx.py.

One nginx for the module, proxying to the session's gunicorn plus a second gunicorn (killed by
the fail-over test, so that test runs last), with free ports and a throwaway prefix.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

import brotli
import pytest
from playwright.sync_api import Browser, expect

from conftest import skip_or_fail
from storefront.orders.seeding import DEMO_STAFF
from tests.stack.conftest import (
    REPO_ROOT,
    SCREENSHOT_DIR,
    StackServer,
    WatchedPage,
    chromium,  # noqa: F401 (fixture)
    free_port,
    start_gunicorn,
    stop_process,
)

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import render_nginx

pytestmark = pytest.mark.stack

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
EXPORT_PATH = "/staff/orders/export.csv"
OTHER_CLIENT_ADDRESS = "127.0.0.2"
EXPORT_HEADER = ["number", "created_at", "status", "username", "email", "items", "total"]


@dataclass
class Nginx:
    http_port: int
    https_port: int
    prefix: Path
    proc: subprocess.Popen[bytes]
    second_app: subprocess.Popen[bytes] | None = None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(port: int, path: str, *, method="GET", headers=None, body=None, tls=False) -> Answer:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": "localhost", **(headers or {})})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def assert_security_headers(answer: Answer, *, https: bool = False, csp: str = PAGE_CSP) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, (name, answer.status, answer.headers)
    assert "permissions-policy" in answer.headers
    assert answer.headers.get("content-security-policy", "").startswith(csp), answer.headers
    assert ("strict-transport-security" in answer.headers) == https, answer.headers
    assert answer.headers.get("server") == "nginx"  # server_tokens off: no version


def start_nginx(
    prefix: Path, sockets: list[str], server_env: dict[str, str], profile: str = "dev"
) -> Nginx:
    if not os.access(NGINX, os.X_OK):
        skip_or_fail("nginx not installed (apt-get install nginx)")
    tls = prefix / "tls"
    subprocess.run([str(REPO_ROOT / "scripts" / "make_dev_cert.sh"), str(tls)], check=True)
    http_port, https_port = free_port(), free_port()
    render_nginx.render(
        prefix,
        {
            "NGINX_LISTEN_HTTP": f"127.0.0.1:{http_port}",
            "NGINX_LISTEN_HTTPS": f"127.0.0.1:{https_port}",
            "NGINX_UPSTREAM_SOCKETS": " ".join(sockets),
            "NGINX_STATIC_ROOT": server_env["STATIC_ROOT"],
            "NGINX_MEDIA_ROOT": server_env["MEDIA_ROOT"],
            "NGINX_TLS_CERT": str(tls / "dev-cert.pem"),
            "NGINX_TLS_KEY": str(tls / "dev-key.pem"),
            # Generous general and API limits: only the auth limit is under test here.
            "NGINX_RATE_GENERAL": "200r/s",
            "NGINX_RATE_API": "200r/s",
            "NGINX_ACME_ROOT": str(prefix / "acme"),
        },
        profile,
    )
    base = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    base += ["-e", str(prefix / "logs" / "error.log")]
    checked = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen([*base, "-g", "daemon off;"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            fetch(http_port, "/_errors/none")
            return Nginx(http_port, https_port, prefix, proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail((prefix / "logs" / "error.log").read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, signal.SIGQUIT if "nginx" in str(proc.args) else signal.SIGTERM)


@pytest.fixture(scope="module")
def nginx(stack_server: StackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx proxying to the session gunicorn (TCP) and a second gunicorn on a unix socket."""
    prefix = tmp_path_factory.mktemp("nginx")
    socket_path = prefix / "second.sock"
    env = {**stack_server.env, "GUNICORN_BIND": f"unix:{socket_path}"}
    second = start_gunicorn(env, prefix / "second-gunicorn.log")
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        server = start_nginx(prefix, [stack_server.netloc, f"unix:{socket_path}"], stack_server.env)
        server.second_app = second
        try:
            yield server
        finally:
            stop(server.proc)
    finally:
        stop(second)


def static_file(static_root: Path) -> str:
    """The hashed name of a CSS file that has .gz and .br siblings."""
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    for hashed in manifest["paths"].values():
        path = static_root / hashed
        if hashed.endswith(".css") and Path(f"{path}.br").exists() and Path(f"{path}.gz").exists():
            return hashed
    pytest.fail("no compressed CSS file in STATIC_ROOT")


def test_page_through_nginx_has_security_headers(nginx: Nginx) -> None:
    answer = fetch(nginx.http_port, "/accounts/login/")
    assert answer.status == 200
    assert_security_headers(answer)
    tls = fetch(nginx.https_port, "/accounts/login/", tls=True)
    assert tls.status == 200
    assert_security_headers(tls, https=True)


def test_static_served_by_nginx_immutable_and_precompressed(
    nginx: Nginx, stack_server: StackServer
) -> None:
    name = static_file(Path(stack_server.env["STATIC_ROOT"]))
    plain = fetch(nginx.http_port, f"/static/{name}")
    assert plain.status == 200
    assert "immutable" in plain.headers["cache-control"]
    assert "max-age=31536000" in plain.headers["cache-control"]
    assert_security_headers(plain)
    brotli = fetch(nginx.http_port, f"/static/{name}", headers={"Accept-Encoding": "br"})
    assert brotli.headers.get("content-encoding") == "br"
    gz = fetch(nginx.http_port, f"/static/{name}", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip"
    # Served from disk: nginx's access log has it, gunicorn never saw it.
    assert name not in stack_server.log_path.read_text(errors="replace")


def test_media_sandboxed_and_not_sniffed(nginx: Nginx, stack_server: StackServer) -> None:
    media = Path(stack_server.env["MEDIA_ROOT"])
    media.mkdir(parents=True, exist_ok=True)
    (media / "evil.unknownext").write_text("<script>alert(1)</script>")
    (media / ".secret").write_text("x")
    answer = fetch(nginx.http_port, "/media/evil.unknownext")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert fetch(nginx.http_port, "/media/.secret").status == 404
    assert fetch(nginx.http_port, "/media/").status in {403, 404}  # no autoindex


def test_not_found_has_security_headers(nginx: Nginx) -> None:
    answer = fetch(nginx.http_port, "/no-such-page/")
    assert answer.status == 404
    assert_security_headers(answer)


def csp_directives(policy: str) -> dict[str, list[str]]:
    """`a x y; b z` -> {"a": ["x", "y"], "b": ["z"]}."""
    directives = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def test_api_docs_csp_has_no_unsafe_inline(nginx: Nginx) -> None:
    page = fetch(nginx.http_port, "/api/docs/")
    assert page.status == 200
    csp = csp_directives(page.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"], csp
    assert "'unsafe-inline'" not in csp["style-src"], csp
    assert "'unsafe-eval'" not in csp["script-src"] + csp["default-src"], csp
    assert_security_headers(page, csp="default-src 'self'; img-src 'self' data:; style-src")
    # No inline script left in the page: Swagger UI starts from a separate file.
    html = page.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), html
    assert '<script src="/api/docs/?script="></script>' in html
    script = fetch(nginx.http_port, "/api/docs/?script=")
    assert script.status == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in script.body


def watch(page, watched: WatchedPage) -> None:
    """The same bookkeeping as the `watched_page` fixture, plus CSP violation reports."""
    page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push("
        "`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sample})`));"
    )
    page.on("request", lambda req: watched.requested_urls.append(req.url))
    page.on(
        "console",
        lambda msg: (
            watched.console_errors.append(msg.text) if msg.type in {"error", "warning"} else None
        ),
    )
    page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
    page.on("requestfailed", lambda req: watched.failed_requests.append(req.url))
    page.on(
        "response",
        lambda resp: (
            watched.bad_responses.append(f"{resp.status} {resp.url}")
            if resp.status >= 400
            else None
        ),
    )


def test_api_docs_render_in_chromium_under_nginx_csp(
    nginx: Nginx,
    stack_server: StackServer,
    chromium: Browser,  # noqa: F811
) -> None:
    """Through nginx, so under its CSP (the gunicorn-only browser tests get none): Swagger UI
    loads, fetches the schema and lists the operations, and Chromium reports no violation."""
    origin = f"http://localhost:{nginx.http_port}"
    context = chromium.new_context(base_url=origin, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    server = StackServer(url=origin, log_path=stack_server.log_path, env=stack_server.env)
    watched = WatchedPage(page=page, server=server, name="api-docs-through-nginx")
    watch(page, watched)
    try:
        response = page.goto("/api/docs/")
        assert response is not None and response.ok
        assert "'unsafe-inline'" not in response.headers["content-security-policy"]
        paths = page.locator(".opblock-summary-path")
        expect(paths.filter(has_text=re.compile(r"^/api/products/$"))).to_have_count(1)
        expect(paths.filter(has_text="/api/orders/{number}/")).to_have_count(1)
        page.wait_for_load_state("networkidle")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        watched.screenshot("rendered")
        # The inline <style> block applied (allowed by its hash): the page background is its.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(250, 250, 250)"
        assert page.evaluate("window.__cspViolations") == []
        assert any(u.endswith("/api/schema/") for u in watched.requested_urls)
        watched.assert_clean()
    finally:
        context.close()


class HeldUpstream:
    """A one-shot HTTP upstream that sends the CSV header row and a first row, then holds the
    rest of its chunked body until the test calls release(): the export "is not finished"
    for as long as the test wants, so nothing here depends on timing."""

    FIRST = b"number,created_at\r\nSF-1,2026-01-01\r\n"
    REST = b"".join(b"SF-%d,2026-01-02\r\n" % n for n in range(2, 2000))

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._release = threading.Event()
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self._release.set()

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _serve(self) -> None:
        self.listener.settimeout(15)
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + self._chunk(self.FIRST)
            )
            self._release.wait(15)
            conn.sendall(self._chunk(self.REST) + b"0\r\n\r\n")
            self.finished.set()

    def close(self) -> None:
        self.release()
        self.thread.join(15)
        self.listener.close()


class RawResponse:
    """An HTTP/1.1 GET over a plain socket, its chunked body decoded chunk by chunk as it
    arrives (and un-gzipped), so a test sees exactly when bytes reach the client."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall("\r\n".join([*lines, "", ""]).encode())
        self.buffer = b""
        self.complete = False  # the terminating zero-length chunk has arrived
        self.status = 0
        self.headers: dict[str, str] = {}

    def read_head(self, *, wait: float) -> bool:
        """Parse the status line and headers; False if they do not arrive within `wait`s."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._receive(wait):
                return False
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *fields = head.decode("latin-1").split("\r\n")
        self.status = int(status.split()[1])
        self.headers = {}
        for field in fields:
            name, value = field.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()
        assert self.headers.get("transfer-encoding") == "chunked", self.headers
        encoding = self.headers.get("content-encoding", "identity")
        self.decode = {
            "identity": bytes,
            "gzip": zlib.decompressobj(16 + zlib.MAX_WBITS).decompress,
            "br": brotli.Decompressor().process,
        }[encoding]
        return True

    def _receive(self, wait: float) -> bool:
        if not select.select([self.sock], [], [], wait)[0]:
            return False
        data = self.sock.recv(65536)
        assert data, "connection closed before the last chunk"
        self.buffer += data
        return True

    def _next_chunk(self) -> bytes | None:
        if b"\r\n" not in self.buffer:
            return None
        size_line, rest = self.buffer.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if len(rest) < size + 2:
            return None
        self.buffer = rest[size + 2 :]
        self.complete = size == 0
        return rest[:size]

    def read(self, want: float = float("inf"), *, wait: float) -> bytes:
        """Decoded body bytes until `want` are in, the body is complete, or nothing more
        arrives for `wait` seconds."""
        data = b""
        while len(data) < want and not self.complete:
            chunk = self._next_chunk()
            if chunk is None:
                if not self._receive(wait):
                    break
            else:
                data += self.decode(chunk)
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def held_nginx(tmp_path: Path) -> Iterator[tuple[Nginx, HeldUpstream]]:
    upstream = HeldUpstream()
    roots = {"STATIC_ROOT": str(tmp_path / "static"), "MEDIA_ROOT": str(tmp_path / "media")}
    server = start_nginx(tmp_path / "held", [f"127.0.0.1:{upstream.port}"], roots)
    try:
        yield server, upstream
    finally:
        upstream.close()
        stop(server.proc)


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip", "br"])
def test_export_location_passes_rows_on_before_the_export_finishes(
    held_nginx: tuple[Nginx, HeldUpstream], accept_encoding: str
) -> None:
    server, upstream = held_nginx
    resp = RawResponse(server.http_port, EXPORT_PATH, {"Accept-Encoding": accept_encoding})
    try:
        assert resp.read_head(wait=5), "no response while the export was held"
        assert resp.status == 200
        assert "content-length" not in resp.headers
        assert resp.headers.get("content-encoding", "identity") == accept_encoding
        # Compressed too: nginx flushes gzip and brotli on every unbuffered read from upstream.
        first = resp.read(len(upstream.FIRST), wait=5)
        assert first == upstream.FIRST, "the first rows did not arrive while the export was held"
        assert not upstream.finished.is_set() and not resp.complete
        upstream.release()
        rest = resp.read(wait=10)
        assert resp.complete
        assert first + rest == upstream.FIRST + upstream.REST
    finally:
        resp.close()


@pytest.mark.parametrize("accept_encoding", ["gzip", "br"])
def test_buffered_location_would_hold_the_first_rows(
    held_nginx: tuple[Nginx, HeldUpstream], accept_encoding: str
) -> None:
    """The control: the same held upstream behind a buffered location (`location /`) sends
    no body byte while held, so the test above can tell buffering from streaming. (Without
    compression a buffered location passes what it has to a fast client too; browsers always
    ask for compression, and the compressor then keeps the rows until its buffer fills.)"""
    server, upstream = held_nginx
    headers = {"Accept-Encoding": accept_encoding}
    resp = RawResponse(server.http_port, "/staff/orders/other.csv", headers)
    try:
        # Not even the headers: nginx sends them with the first body bytes.
        assert not resp.read_head(wait=1.0)
        upstream.release()
        assert resp.read_head(wait=10)
        assert resp.status == 200
        assert resp.read(wait=10) == upstream.FIRST + upstream.REST
    finally:
        resp.close()


def log_in_through_nginx(port: int, username: str, password: str) -> SimpleCookie:
    # From another loopback address: the login rate limit is per client address, and
    # test_login_burst_gets_429 counts on 127.0.0.1's allowance being untouched.
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(OTHER_CLIENT_ADDRESS, 0)
    )
    try:
        conn.request("GET", "/accounts/login/", headers={"Host": "localhost"})
        form = conn.getresponse()
        cookies = SimpleCookie()
        for header in form.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.read())
        assert token, "no CSRF token on the login page"
        body = f"csrfmiddlewaretoken={token.group(1).decode()}&username={username}"
        body += f"&password={password}"
        conn.request(
            "POST",
            "/accounts/login/",
            body=body,
            headers={
                "Host": "localhost",
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookies['csrftoken'].value}",
            },
        )
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 302, answer.status
        for header in answer.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
        return cookies
    finally:
        conn.close()


@pytest.fixture(scope="module")
def staff_cookies(nginx: Nginx) -> SimpleCookie:
    return log_in_through_nginx(nginx.http_port, *DEMO_STAFF)


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip", "br"])
def test_staff_csv_export_streams_through_nginx(
    nginx: Nginx, staff_cookies: SimpleCookie, accept_encoding: str
) -> None:
    """The real export through the real location: Django streams it (chunked, no length)
    and it arrives as one CSV document with the header row and every seeded order."""
    cookies = staff_cookies
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
    headers = {"Cookie": cookie, "Accept-Encoding": accept_encoding}
    resp = RawResponse(nginx.http_port, EXPORT_PATH, headers)
    try:
        assert resp.read_head(wait=20)
        assert resp.status == 200, resp.headers
        assert resp.headers["content-type"] == "text/csv; charset=utf-8"
        assert resp.headers["content-disposition"] == 'attachment; filename="orders.csv"'
        assert "content-length" not in resp.headers
        assert resp.headers.get("content-encoding", "identity") == accept_encoding
        body = resp.read(wait=20)
        assert resp.complete
    finally:
        resp.close()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert rows[0] == EXPORT_HEADER
    assert len(rows) > 100, "the seeded orders are missing"
    assert all(len(row) == len(EXPORT_HEADER) for row in rows), "ragged CSV"
    assert all(row[0] for row in rows[1:]), "an order without a number"


def test_body_over_limit_is_413(nginx: Nginx) -> None:
    body = b"x" * (10 * 1024 * 1024 + 1)
    answer = fetch(nginx.http_port, "/products/", method="POST", body=body)
    assert answer.status == 413
    assert_security_headers(answer)


def test_tls_12_and_13_only(nginx: Nginx) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = version
        conn = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=context)
        conn.request("GET", "/_errors/none")
        conn.getresponse().read()
        assert conn.sock.version() == version.name.replace("v1_", "v1.")
        conn.close()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point here
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    conn = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=context)
    with pytest.raises(ssl.SSLError):
        conn.request("GET", "/")
    conn.close()


def test_login_burst_gets_429(nginx: Nginx) -> None:
    statuses = [
        fetch(
            nginx.http_port,
            "/accounts/login/",
            method="POST",
            body=b"username=a&password=b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status
        for _ in range(10)
    ]
    # rate 5r/m with burst 5: the first request plus the burst of 5 pass, the rest are refused.
    assert statuses[:6].count(429) == 0, statuses
    assert statuses[6:] == [429] * 4, statuses


def test_dead_upstream_gives_friendly_502_with_headers(
    stack_server: StackServer, tmp_path: Path
) -> None:
    dead = start_nginx(tmp_path / "dead", [f"unix:{tmp_path / 'nobody.sock'}"], stack_server.env)
    try:
        answer = fetch(dead.http_port, "/")
        assert answer.status == 502
        assert b"right back" in answer.body
        assert_security_headers(answer)
    finally:
        stop(dead.proc)


@pytest.mark.parametrize("profile", ["dev", "production"])
def test_gixy_finds_nothing(profile: str, tmp_path: Path) -> None:
    gixy = Path(sys.executable).with_name("gixy")
    if not gixy.exists():
        skip_or_fail("gixy not installed (pip install gixy-ng)")
    render_nginx.render(tmp_path, {}, profile)
    done = subprocess.run([str(gixy), str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Problem:" not in done.stdout, done.stdout


def test_zz_failover_when_one_instance_dies(nginx: Nginx) -> None:
    """Runs last in the module: it kills the second gunicorn."""
    assert nginx.second_app is not None
    nginx.second_app.kill()
    nginx.second_app.wait()
    statuses = [fetch(nginx.http_port, "/products/").status for _ in range(12)]
    assert statuses == [200] * 12


def test_production_http_redirects_with_headers_and_answers_acme(
    stack_server: StackServer, tmp_path: Path
) -> None:
    prefix = tmp_path / "prod"
    challenge = prefix / "acme" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token123").write_text("proof")
    prod = start_nginx(prefix, [stack_server.netloc], stack_server.env, profile="production")
    try:
        answer = fetch(prod.http_port, "/products/?page=2")
        assert answer.status == 301
        assert answer.headers["location"] == "https://localhost/products/?page=2"
        assert_security_headers(answer)
        acme = fetch(prod.http_port, "/.well-known/acme-challenge/token123")
        assert (acme.status, acme.body) == (200, b"proof")
        # The container healthcheck's plain-HTTP probe is answered, not redirected.
        probe = fetch(prod.http_port, "/nginx-healthz")
        assert (probe.status, probe.body) == (200, b"ok\n")
    finally:
        stop(prod.proc)


@pytest.mark.parametrize("profile", ["dev", "production"])
def test_renderer_matches_envsubst(profile: str, tmp_path: Path) -> None:
    """The official image renders the templates with envsubst: both must agree byte for byte."""
    envsubst = shutil.which("envsubst")
    if not envsubst:
        skip_or_fail("envsubst not installed (apt-get install gettext-base)")
    values = render_nginx.render(tmp_path, {}, profile)
    shell_format = " ".join(f"${{{name}}}" for name in values)
    env = {**os.environ, **values}
    for template in (render_nginx.NGINX_DIR / "templates").rglob("*.template"):
        relative = template.relative_to(render_nginx.NGINX_DIR / "templates").with_suffix("")
        ours = tmp_path / ("conf.d" if relative.parent == Path(".") else "") / relative
        theirs = subprocess.run(
            [envsubst, shell_format],
            input=template.read_text(),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert ours.read_text() == theirs, template.name
