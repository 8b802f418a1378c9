"""nginx in front of gunicorn, config rendered from deploy/nginx/ by scripts/render_nginx.py.

One nginx for the module, proxying to the session's gunicorn plus a second gunicorn (killed by
the fail-over test, so that test runs last), with free ports and a throwaway prefix.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import skip_or_fail
from tests.stack.conftest import (
    REPO_ROOT,
    StackServer,
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
