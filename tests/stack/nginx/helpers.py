"""What the nginx tests share: nginx rendered from deploy/nginx/ by scripts/render_nginx.py on
free ports with a throwaway prefix (start_nginx, from harness), a plain HTTP(S) client (fetch)
and the security headers every answer carries."""

from __future__ import annotations

import http.client
import json
import re
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

import harness
from harness import REPO_ROOT, Nginx, stop_process

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import render_nginx  # noqa: F401 - the renderer itself, for test_render.py and test_headers.py

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
OTHER_CLIENT_ADDRESS = "127.0.0.2"


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
    """harness.start_nginx in front of `sockets`, serving the static and media files of the
    gunicorn whose environment is `server_env`."""
    return harness.start_nginx(
        prefix,
        sockets,
        static_root=Path(server_env["STATIC_ROOT"]),
        media_root=Path(server_env["MEDIA_ROOT"]),
        variables={
            "NGINX_PROFILE": profile,
            # Generous general and API limits: only the auth limit is under test here.
            "NGINX_RATE_GENERAL": "200r/s",
            "NGINX_RATE_API": "200r/s",
            "NGINX_ACME_ROOT": str(prefix / "acme"),
            **(extra or {}),
        },
        ready_path="/_errors/none",
        timeout=10,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, signal.SIGQUIT if "nginx" in str(proc.args) else signal.SIGTERM)


def static_file(static_root: Path) -> str:
    """The hashed name of a CSS file that has .gz and .br siblings."""
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    for hashed in manifest["paths"].values():
        path = static_root / hashed
        if hashed.endswith(".css") and Path(f"{path}.br").exists() and Path(f"{path}.gz").exists():
            return hashed
    pytest.fail("no compressed CSS file in STATIC_ROOT")


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
