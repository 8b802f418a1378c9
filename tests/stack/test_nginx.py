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
import uuid
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
from storefront.orders.seeding import DEMO_CUSTOMER, DEMO_CUSTOMER_PROFILE, DEMO_STAFF
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
    # Every header line as received, repeats included (`headers` keeps the last of each name).
    header_lines: tuple[tuple[str, str], ...] = ()

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.header_lines if key == name]


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
        lines = [(k.lower(), v) for k, v in resp.getheaders()]
        return Answer(resp.status, dict(lines), resp.read(), tuple(lines))
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
    prefix: Path,
    sockets: list[str],
    server_env: dict[str, str],
    profile: str = "dev",
    extra: dict[str, str] | None = None,
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
            **(extra or {}),
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
        expect(paths.filter(has_text=re.compile(r"^/api/orders/\{number\}/$"))).to_have_count(1)
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


@pytest.mark.parametrize(
    ("path", "client_address"),
    [
        ("/accounts/password/reset/", "127.0.0.3"),
        ("/accounts/reset/MQ/set-password/", "127.0.0.4"),
        ("/accounts/password/change/", "127.0.0.5"),
        ("/admin/login/", "127.0.0.6"),
    ],
)
def test_password_forms_and_admin_login_are_limited_like_login(
    nginx: Nginx, path: str, client_address: str
) -> None:
    """Each from an address of its own, so no test spends another's allowance."""
    statuses = []
    for _ in range(10):
        conn = http.client.HTTPConnection(
            "127.0.0.1", nginx.http_port, timeout=10, source_address=(client_address, 0)
        )
        try:
            conn.request(
                "POST",
                path,
                body=b"email=someone%40example.test",
                headers={"Host": "localhost", "Content-Type": "application/x-www-form-urlencoded"},
            )
            statuses.append(conn.getresponse().status)
        finally:
            conn.close()
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


@pytest.mark.parametrize(
    ("profile", "microcache"), [("dev", "on"), ("production", "on"), ("dev", "off")]
)
def test_gixy_finds_nothing(profile: str, microcache: str, tmp_path: Path) -> None:
    gixy = Path(sys.executable).with_name("gixy")
    if not gixy.exists():
        skip_or_fail("gixy not installed (pip install gixy-ng)")
    render_nginx.render(tmp_path, {"NGINX_MICROCACHE": microcache}, profile)
    done = subprocess.run([str(gixy), str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Problem:" not in done.stdout, done.stdout


# --- microcache (snippets/microcache-on.conf) --------------------------------------------------
# The module's nginx runs with the defaults: microcache on, pages fresh for 1 s. Each test uses
# keys of its own (a random query string), so nothing depends on what earlier tests cached.
# nginx stores `valid_sec = now + 1` in whole seconds and calls an entry expired once now is
# past it: an entry is fresh for at least 1 s and at most 2 s.
MICROCACHE_EXPIRED_AFTER = 2.2


def token() -> str:
    return uuid.uuid4().hex[:12]


def cache_status(answer: Answer) -> str | None:
    return answer.headers.get("x-cache-status")


def cookie_header(cookies: SimpleCookie) -> str:
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())


def app_logs(nginx: Nginx, stack_server: StackServer) -> list[Path]:
    """The access logs of both gunicorns behind the module's nginx."""
    return [stack_server.log_path, nginx.prefix / "second-gunicorn.log"]


def app_requests(logs: list[Path], method: str, path: str) -> int:
    """How many `method path` requests the apps logged (their request line: "GET /p?q HTTP/1.1").
    Waits a moment for lines still being written, then counts."""
    line = f'"{method} {path} HTTP/'
    count, deadline = -1, time.monotonic() + 1.0
    while time.monotonic() < deadline:
        now = sum(log.read_text(errors="replace").count(line) for log in logs if log.exists())
        if now == count and now > 0:
            break
        count = now
        time.sleep(0.25)
    return count


def product_slug(port: int) -> str:
    listing = fetch(port, f"/products/?slug={token()}")
    found = re.search(rb'class="product-card" href="/products/([\w-]+)/"', listing.body)
    assert found, "no product card on the listing"
    return found.group(1).decode()


@pytest.fixture(scope="module")
def customer_cookies(nginx: Nginx) -> SimpleCookie:
    cookies = log_in_through_nginx(nginx.http_port, *DEMO_CUSTOMER)
    assert "sessionid" in cookies
    return cookies


@pytest.mark.parametrize("page", ["/", "/products/"])
def test_microcache_anonymous_listing_miss_then_hit(
    nginx: Nginx, stack_server: StackServer, page: str
) -> None:
    path = f"{page}?q=micro{token()}"
    first = fetch(nginx.http_port, path)
    second = fetch(nginx.http_port, path)
    assert (first.status, cache_status(first)) == (200, "MISS"), first.headers
    assert (second.status, cache_status(second)) == (200, "HIT"), second.headers
    assert second.body == first.body
    for answer in (first, second):
        assert_security_headers(answer)
        assert "set-cookie" not in answer.headers
    # Compressed after the cache: the stored copy is Django's plain page, brotli per client.
    compressed = fetch(nginx.http_port, path, headers={"Accept-Encoding": "br"})
    assert cache_status(compressed) == "HIT"
    assert compressed.headers.get("content-encoding") == "br"
    assert brotli.decompress(compressed.body) == first.body
    # HTTPS has entries of its own (the scheme is part of the key), with HSTS on every answer.
    tls = [fetch(nginx.https_port, path, tls=True) for _ in range(2)]
    assert [cache_status(answer) for answer in tls] == ["MISS", "HIT"]
    for answer in tls:
        assert_security_headers(answer, https=True)
    assert app_requests(app_logs(nginx, stack_server), "GET", path) == 2


def test_logged_in_customer_never_gets_a_microcached_page(
    nginx: Nginx, stack_server: StackServer, customer_cookies: SimpleCookie
) -> None:
    signed_in = {"Cookie": cookie_header(customer_cookies)}
    name = DEMO_CUSTOMER_PROFILE["full_name"]
    nav_user = re.compile(rb'class="nav-user">([^<]*)<')

    # An anonymous copy is in the cache (HIT) ...
    path = f"/products/?q=session{token()}"
    assert cache_status(fetch(nginx.http_port, path)) == "MISS"
    anonymous = fetch(nginx.http_port, path)
    assert cache_status(anonymous) == "HIT"
    assert not nav_user.search(anonymous.body)
    assert b'href="/accounts/login/"' in anonymous.body
    # ... and the customer right after still gets their own page from the app.
    mine = fetch(nginx.http_port, path, headers=signed_in)
    assert (mine.status, cache_status(mine)) == (200, "BYPASS"), mine.headers
    shown = nav_user.search(mine.body)
    assert shown and shown.group(1).decode() == name, "the customer's name is not on the page"
    assert mine.body != anonymous.body
    assert_security_headers(mine)

    # The customer first on a cold key: their page is not stored for the next anonymous visitor.
    path = f"/?q=session{token()}"
    mine = fetch(nginx.http_port, path, headers=signed_in)
    assert cache_status(mine) == "BYPASS"
    assert name.encode() in mine.body
    after = fetch(nginx.http_port, path)
    assert cache_status(after) == "MISS", after.headers
    assert name.encode() not in after.body and not nav_user.search(after.body)
    assert cache_status(fetch(nginx.http_port, path)) == "HIT"
    # Two of the customer's requests and the anonymous MISS reached the app; the HIT did not.
    assert app_requests(app_logs(nginx, stack_server), "GET", path) == 2


@pytest.mark.parametrize(
    "marker",
    [
        {"Cookie": "sessionid=nosuchsession"},
        {"Cookie": "csrftoken=abc; messages=xyz"},
        {"Authorization": "Basic ZGVtbzpkZW1v"},
    ],
    ids=["session-cookie", "messages-cookie", "authorization"],
)
def test_session_messages_or_authorization_bypass_the_microcache(
    nginx: Nginx, marker: dict[str, str]
) -> None:
    path = f"/products/?q=bypass{token()}"
    # Cold key: bypassed, and the answer is not stored.
    assert cache_status(fetch(nginx.http_port, path, headers=marker)) == "BYPASS"
    assert cache_status(fetch(nginx.http_port, path)) == "MISS"
    assert cache_status(fetch(nginx.http_port, path)) == "HIT"
    # Warm key: still bypassed.
    bypassed = fetch(nginx.http_port, path, headers=marker)
    assert (bypassed.status, cache_status(bypassed)) == (200, "BYPASS")


def test_other_cookies_do_not_bypass_the_microcache(nginx: Nginx) -> None:
    """A csrftoken (what every visitor of a product page holds) is not personal: such a request
    shares the anonymous copy (nginx ignores Django's `Vary: Cookie` for the microcache)."""
    path = f"/products/?q=othercookie{token()}"
    # A well-formed token (32 letters and digits): Django replaces a malformed one, which
    # would set a cookie and so never be stored.
    headers = {"Cookie": f"csrftoken={uuid.uuid4().hex}; theme=dark"}
    assert cache_status(fetch(nginx.http_port, path, headers=headers)) == "MISS"
    assert cache_status(fetch(nginx.http_port, path, headers=headers)) == "HIT"
    other = {"Cookie": f"csrftoken={uuid.uuid4().hex}"}
    assert cache_status(fetch(nginx.http_port, path, headers=other)) == "HIT"
    assert cache_status(fetch(nginx.http_port, path)) == "HIT"


def test_post_is_never_microcached(nginx: Nginx, stack_server: StackServer) -> None:
    path = f"/products/?q=post{token()}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    posts = [fetch(nginx.http_port, path, method="POST", body=b"a=1", headers=form) for _ in "ab"]
    for answer in posts:
        assert cache_status(answer) in {None, "BYPASS"}, answer.headers
    # The POST answers (CSRF refusals) were not stored for GET either.
    get = fetch(nginx.http_port, path)
    assert (get.status, cache_status(get)) == (200, "MISS")
    logs = app_logs(nginx, stack_server)
    assert app_requests(logs, "POST", path) == 2
    assert app_requests(logs, "GET", path) == 1


def test_page_that_sets_a_cookie_is_never_stored(nginx: Nginx, stack_server: StackServer) -> None:
    """Product pages send the CSRF cookie (their add-to-cart form) with every answer: nginx never
    stores them, so each request goes to the app."""
    path = f"/products/{product_slug(nginx.http_port)}/?v={token()}"
    answers = [fetch(nginx.http_port, path) for _ in range(3)]
    for answer in answers:
        assert answer.status == 200
        assert "csrftoken=" in answer.headers.get("set-cookie", ""), answer.headers
        assert cache_status(answer) == "MISS", answer.headers
        assert_security_headers(answer)
    assert app_requests(app_logs(nginx, stack_server), "GET", path) == 3


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/cart/", "/healthz", "/dashboard/", "/api/products/"]
)
def test_other_locations_are_not_microcached(nginx: Nginx, path: str) -> None:
    for _ in range(2):
        answer = fetch(nginx.http_port, path)
        assert "x-cache-status" not in answer.headers, (path, answer.headers)


def run_in_app(env: dict[str, str], code: str) -> None:
    """Python in the app's environment (its database and cache), e.g. a catalog edit."""
    done = subprocess.run(
        [sys.executable, "-m", "storefront", "shell", "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_expired_entry_is_refreshed(nginx: Nginx, stack_server: StackServer) -> None:
    """After the validity the stale page is answered once more while one background request
    fetches the new one, which the following requests get."""
    word = f"fresh{token()}"
    path = f"/products/?q={word}"
    slug = product_slug(nginx.http_port)
    old = fetch(nginx.http_port, path)
    assert cache_status(old) == "MISS"
    card = f'href="/products/{slug}/"'.encode()
    assert card not in old.body  # no product is called that yet (the page echoes the query)
    rename = (
        "from storefront.catalog.models import Product; "
        f"p = Product.objects.get(slug={slug!r}); p.name = p.name + ' ' + {word!r}; p.save()"
    )
    restore = (
        "from storefront.catalog.models import Product; "
        f"p = Product.objects.get(slug={slug!r}); p.name = p.name.removesuffix(' ' + {word!r}); "
        "p.save()"
    )
    run_in_app(stack_server.env, rename)
    try:
        time.sleep(MICROCACHE_EXPIRED_AFTER)  # the subprocess took longer than that anyway
        stale = fetch(nginx.http_port, path)
        assert stale.status == 200
        assert cache_status(stale) in {"STALE", "UPDATING", "EXPIRED"}, stale.headers
        if cache_status(stale) != "EXPIRED":  # EXPIRED went to the app itself
            assert stale.body == old.body
        deadline = time.monotonic() + 10
        while True:
            fresh = fetch(nginx.http_port, path)
            if cache_status(fresh) == "HIT" and card in fresh.body:
                break
            assert time.monotonic() < deadline, fresh.headers
            time.sleep(0.1)
    finally:
        run_in_app(stack_server.env, restore)


def test_burst_on_a_cold_key_reaches_the_app_once(nginx: Nginx, stack_server: StackServer) -> None:
    """proxy_cache_lock: 20 identical requests at once, one goes to the app, the others wait
    for its answer and get it from the cache."""
    path = f"/products/?q=burst{token()}"
    clients = 20
    start = threading.Barrier(clients)
    answers: list[Answer] = []

    def client() -> None:
        start.wait(10)
        answers.append(fetch(nginx.http_port, path))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status for a in answers] == [200] * clients
    statuses = sorted(cache_status(a) or "" for a in answers)
    assert statuses == ["HIT"] * (clients - 1) + ["MISS"], statuses
    assert len({a.body for a in answers}) == 1
    assert app_requests(app_logs(nginx, stack_server), "GET", path) == 1


def test_microcache_off_sends_every_request_to_the_app(
    stack_server: StackServer, tmp_path: Path
) -> None:
    """NGINX_MICROCACHE=off (the benchmark's "without"): no cache status, every request counted."""
    server = start_nginx(
        tmp_path / "off", [stack_server.netloc], stack_server.env, extra={"NGINX_MICROCACHE": "off"}
    )
    try:
        path = f"/products/?q=off{token()}"
        answers = [fetch(server.http_port, path) for _ in range(3)]
        assert [a.status for a in answers] == [200] * 3
        assert all("x-cache-status" not in a.headers for a in answers)
        for answer in answers:
            assert_security_headers(answer)
        assert app_requests([stack_server.log_path], "GET", path) == 3
    finally:
        stop(server.proc)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NGINX_MICROCACHE", "yes"),
        ("NGINX_MICROCACHE_SECONDS", "1 s"),
        ("NGINX_MICROCACHE_SECONDS", "0"),
    ],
)
def test_renderer_refuses_bad_microcache_values(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=name):
        render_nginx.render(tmp_path, {name: value})


def test_stale_listing_while_every_app_is_down_product_pages_get_502(
    stack_server: StackServer, tmp_path: Path
) -> None:
    """An nginx of its own in front of a gunicorn of its own, which the test stops: a cached
    listing is still served (STALE), an uncached product page gets the friendly 502 page."""
    socket_path = tmp_path / "app.sock"
    env = {**stack_server.env, "GUNICORN_BIND": f"unix:{socket_path}", "GUNICORN_WORKERS": "1"}
    app = start_gunicorn(env, tmp_path / "gunicorn.log")
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        server = start_nginx(tmp_path / "nginx", [f"unix:{socket_path}"], stack_server.env)
        try:
            path = f"/products/?stale={token()}"
            listing = fetch(server.http_port, path)
            assert (listing.status, cache_status(listing)) == (200, "MISS")
            product = f"/products/{product_slug(server.http_port)}/"
            assert fetch(server.http_port, product).status == 200
            stop_process(app)
            time.sleep(MICROCACHE_EXPIRED_AFTER)
            stale = fetch(server.http_port, path)
            assert (stale.status, cache_status(stale)) == (200, "STALE"), stale.headers
            assert stale.body == listing.body
            assert_security_headers(stale)
            down = fetch(server.http_port, product)
            assert down.status == 502
            assert b"right back" in down.body
            assert_security_headers(down)
        finally:
            stop(server.proc)
    finally:
        stop_process(app)


# --- one source per security header, HSTS from SECURE_HSTS_SECONDS, Secure cookies over HTTPS ---
# Django (SecurityMiddleware, XFrameOptionsMiddleware) sets some of these for runs without nginx;
# through nginx each must arrive exactly once, or browsers and scanners see `nosniff, nosniff`.
ONCE_HEADERS = (
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
    "content-security-policy",
)
DEFAULT_HSTS = f"max-age={render_nginx.DEFAULT_HSTS_SECONDS}; includeSubDomains"


def assert_each_security_header_once(answer: Answer, *, hsts: str | None) -> None:
    for name in ONCE_HEADERS:
        assert len(answer.all(name)) == 1, (name, answer.status, answer.header_lines)
    assert answer.all("strict-transport-security") == ([hsts] if hsts else []), answer.header_lines


def security_header_targets(stack_server: StackServer) -> dict[str, tuple[str, int]]:
    """A page, a static file, a 404 and a redirect (Django's to the login page), with the
    status each answers."""
    static = static_file(Path(stack_server.env["STATIC_ROOT"]))
    return {
        "page": ("/accounts/login/", 200),
        "static": (f"/static/{static}", 200),
        "not found": ("/no-such-page/", 404),
        "redirect": ("/dashboard/", 302),
    }


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_each_security_header_arrives_once(
    nginx: Nginx, stack_server: StackServer, tls: bool
) -> None:
    port = nginx.https_port if tls else nginx.http_port
    for kind, (path, status) in security_header_targets(stack_server).items():
        answer = fetch(port, path, tls=tls)
        assert answer.status == status, (kind, answer.status)
        assert_each_security_header_once(answer, hsts=DEFAULT_HSTS if tls else None)
        assert answer.headers["x-content-type-options"] == "nosniff", kind


@pytest.mark.parametrize(
    ("setting", "hsts"),
    [
        ({"SECURE_HSTS_SECONDS": "86400"}, "max-age=86400; includeSubDomains"),
        (
            {"SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_PRELOAD": "true"},
            "max-age=600; includeSubDomains; preload",
        ),
        ({"SECURE_HSTS_SECONDS": "0"}, None),
    ],
    ids=["one-day", "preload", "off"],
)
def test_hsts_is_the_one_setting_on_every_answer(
    stack_server: StackServer, tmp_path: Path, setting: dict[str, str], hsts: str | None
) -> None:
    """The production profile rendered from SECURE_HSTS_SECONDS / SECURE_HSTS_PRELOAD: over
    HTTPS its HSTS is exactly that, once, whatever the app behind it sends (this dev app sends
    its own default, one year), and nginx's own HTTP redirect carries the other headers once."""
    prod = start_nginx(
        tmp_path / "hsts", [stack_server.netloc], stack_server.env, "production", extra=setting
    )
    try:
        for kind, (path, status) in security_header_targets(stack_server).items():
            answer = fetch(prod.https_port, path, tls=True)
            assert answer.status == status, (kind, answer.status)
            assert_each_security_header_once(answer, hsts=hsts)
        redirect = fetch(prod.http_port, "/products/")
        assert redirect.status == 301
        assert_each_security_header_once(redirect, hsts=None)
    finally:
        stop(prod.proc)


def cookie_attributes(answer: Answer) -> dict[str, SimpleCookie]:
    """Cookie name -> its parsed Set-Cookie (attributes included)."""
    cookies = {}
    for header in answer.all("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        cookies.update({name: cookie for name in cookie})
    return cookies


def log_in_answers(
    port: int, username: str, password: str, *, tls: bool, source: str
) -> tuple[Answer, Answer]:
    """The login form and the login POST, as a browser sends them (Origin, token, cookie),
    from a loopback address of the test's own (the auth rate limit counts per address)."""
    scheme = "https" if tls else "http"
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=10, context=context, source_address=(source, 0)
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))

    def exchange(method: str, headers: dict[str, str], body: str | None = None) -> Answer:
        conn.request(
            method, "/accounts/login/", body=body, headers={"Host": "localhost", **headers}
        )
        resp = conn.getresponse()
        lines = [(k.lower(), v) for k, v in resp.getheaders()]
        return Answer(resp.status, dict(lines), resp.read(), tuple(lines))

    try:
        form = exchange("GET", {})
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
        assert token, "no CSRF token on the login page"
        csrf_cookie = cookie_attributes(form)["csrftoken"]["csrftoken"].value
        body = f"csrfmiddlewaretoken={token.group(1).decode()}&username={username}"
        body += f"&password={password}"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            "Origin": f"{scheme}://localhost",
            "Referer": f"{scheme}://localhost/accounts/login/",
        }
        return form, exchange("POST", headers, body)
    finally:
        conn.close()


def test_cookies_are_secure_over_https(nginx: Nginx) -> None:
    form, login = log_in_answers(nginx.https_port, *DEMO_CUSTOMER, tls=True, source="127.0.0.7")
    assert login.status == 302, login.body[:300]
    assert cookie_attributes(form)["csrftoken"]["csrftoken"]["secure"] is True, form.header_lines
    session = cookie_attributes(login)["sessionid"]["sessionid"]
    assert session["secure"] is True, login.header_lines
    assert session["httponly"] is True
    for header in login.all("set-cookie") + form.all("set-cookie"):
        assert header.lower().count("secure") == 1, header  # added once, never twice


def test_cookies_are_not_secure_over_plain_http_dev_and_login_works(nginx: Nginx) -> None:
    """The dev profile's plain HTTP (make run's :8000): a browser would drop a Secure cookie
    received over HTTP, and logging in there would fail."""
    form, login = log_in_answers(nginx.http_port, *DEMO_CUSTOMER, tls=False, source="127.0.0.8")
    assert login.status == 302, login.body[:300]
    assert login.headers["location"] == "/dashboard/"
    assert cookie_attributes(form)["csrftoken"]["csrftoken"]["secure"] == ""
    assert cookie_attributes(login)["sessionid"]["sessionid"]["secure"] == ""


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_compressed_pages_reflect_only_masked_csrf_tokens(nginx: Nginx, encoding: str) -> None:
    """BREACH needs a secret repeated byte for byte in compressed answers: the form's CSRF
    token is masked anew for each answer (Django), so two answers for the same cookie differ,
    and the cookie's secret itself never appears in a page."""
    first = fetch(nginx.https_port, "/accounts/login/", tls=True)
    secret = cookie_attributes(first)["csrftoken"]["csrftoken"].value
    headers = {"Cookie": f"csrftoken={secret}", "Accept-Encoding": encoding}
    decompress = {
        "gzip": lambda b: zlib.decompress(b, 16 + zlib.MAX_WBITS),
        "br": brotli.decompress,
    }
    tokens = []
    for _ in range(2):
        answer = fetch(nginx.https_port, "/accounts/login/", tls=True, headers=headers)
        assert answer.headers.get("content-encoding") == encoding
        page = decompress[encoding](answer.body)
        assert secret.encode() not in page
        found = re.findall(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert len(found) == 1
        tokens.append(found[0])
    assert tokens[0] != tokens[1]


def test_zz_failover_when_one_instance_dies(nginx: Nginx) -> None:
    """Runs last in the module: it kills the second gunicorn."""
    assert nginx.second_app is not None
    nginx.second_app.kill()
    nginx.second_app.wait()
    # A new query string each time: every request misses the microcache and reaches an app.
    answers = [fetch(nginx.http_port, f"/products/?failover={n}") for n in range(12)]
    assert [a.status for a in answers] == [200] * 12
    assert {a.headers.get("x-cache-status") for a in answers} == {"MISS"}


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
        # To the host the client asked for and the HTTPS port users reach.
        assert answer.headers["location"] == f"https://localhost:{prod.https_port}/products/?page=2"
        assert_security_headers(answer)
        # A client claiming HTTPS is not believed: no trusted proxy is configured.
        spoofed = fetch(prod.http_port, "/products/", headers={"X-Forwarded-Proto": "https"})
        assert spoofed.status == 301
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


def api_next_link(port: int, headers: dict[str, str]) -> str:
    answer = fetch(
        port, "/api/products/?page_size=2", headers={"Accept": "application/json", **headers}
    )
    assert answer.status == 200, answer.body[:300]
    return json.loads(answer.body)["next"]


def test_forwarded_headers_from_an_untrusted_client_are_ignored(nginx: Nginx) -> None:
    forged = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "localhost:9443",
        "X-Forwarded-For": "203.0.113.9",
    }
    link = api_next_link(nginx.http_port, {"Host": f"localhost:{nginx.http_port}", **forged})
    assert link.startswith(f"http://localhost:{nginx.http_port}/api/products/?"), link
    page = fetch(nginx.http_port, "/products/?x=1", headers=forged)
    assert "strict-transport-security" not in page.headers


def test_a_trusted_load_balancer_forwards_scheme_host_and_port(
    stack_server: StackServer, tmp_path: Path
) -> None:
    """NGINX_TRUSTED_PROXIES=127.0.0.1: a balancer on loopback terminated TLS on :9443."""
    balanced = start_nginx(
        tmp_path / "balanced",
        [stack_server.netloc],
        stack_server.env,
        profile="production",
        extra={"NGINX_TRUSTED_PROXIES": "127.0.0.1/32 10.0.0.0/8"},
    )
    try:
        forwarded = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "localhost:9443",
            "X-Forwarded-For": "203.0.113.9",
        }
        # Served on the plain HTTP port (the balancer already did TLS), not redirected.
        link = api_next_link(balanced.http_port, forwarded)
        assert link.startswith("https://localhost:9443/api/products/?"), link
        page = fetch(balanced.http_port, "/products/?lb=1", headers=forwarded)
        assert page.status == 200
        assert_security_headers(page, https=True)
        # Without the balancer's word it is plain HTTP: redirected to HTTPS.
        direct = fetch(balanced.http_port, "/products/?lb=2")
        assert direct.status == 301
        assert direct.headers["location"].startswith(f"https://localhost:{balanced.https_port}/")
        # The client address is the one the balancer reported (nginx's access log).
        access_log = (tmp_path / "balanced" / "logs" / "access.log").read_text()
        assert "203.0.113.9" in access_log
    finally:
        stop(balanced.proc)


def test_production_redirect_to_the_default_https_port_names_no_port(
    stack_server: StackServer, tmp_path: Path
) -> None:
    prod = start_nginx(
        tmp_path / "prod443",
        [stack_server.netloc],
        stack_server.env,
        profile="production",
        extra={"NGINX_HTTPS_PUBLIC_PORT": "443"},
    )
    try:
        answer = fetch(prod.http_port, "/cart/", headers={"Host": "shop.example:8080"})
        assert answer.status == 301
        assert answer.headers["location"] == "https://shop.example/cart/"
    finally:
        stop(prod.proc)
