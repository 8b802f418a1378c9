"""nginx as the proxy: dead and failing upstreams, the production profile's HTTP redirect and ACME
answers, and which forwarded headers it believes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.stack.conftest import StackServer, start_gunicorn, stop_process
from tests.stack.nginx.helpers import Nginx, assert_security_headers, fetch, start_nginx, stop

pytestmark = pytest.mark.stack


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


def test_failover_when_one_instance_dies(stack_server: StackServer, tmp_path: Path) -> None:
    """An nginx of its own in front of the session gunicorn and a second gunicorn of its own,
    which the test kills: every request is still answered, by the instance left."""
    socket_path = tmp_path / "second.sock"
    env = {**stack_server.env, "GUNICORN_BIND": f"unix:{socket_path}", "GUNICORN_WORKERS": "1"}
    second = start_gunicorn(env, tmp_path / "second-gunicorn.log")
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        server = start_nginx(
            tmp_path / "nginx", [stack_server.netloc, f"unix:{socket_path}"], stack_server.env
        )
        try:
            second.kill()
            second.wait()
            # A new query string each time: every request misses the microcache, reaches an app.
            answers = [fetch(server.http_port, f"/products/?failover={n}") for n in range(12)]
            assert [a.status for a in answers] == [200] * 12
            assert {a.headers.get("x-cache-status") for a in answers} == {"MISS"}
        finally:
            stop(server.proc)
    finally:
        stop_process(second)


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
