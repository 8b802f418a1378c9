"""Security headers through nginx: on pages, errors and the API docs (its CSP, checked in
Chromium too), each header exactly once, and HSTS from the one setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.stack.conftest import SCREENSHOT_DIR, StackServer, WatchedPage
from tests.stack.nginx.helpers import (
    Answer,
    Nginx,
    assert_security_headers,
    fetch,
    render_nginx,
    start_nginx,
    static_file,
    stop,
)

pytestmark = pytest.mark.stack


def test_page_through_nginx_has_security_headers(nginx: Nginx) -> None:
    answer = fetch(nginx.http_port, "/accounts/login/")
    assert answer.status == 200
    assert_security_headers(answer)
    tls = fetch(nginx.https_port, "/accounts/login/", tls=True)
    assert tls.status == 200
    assert_security_headers(tls, https=True)


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
    chromium: Browser,
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


# --- one source per security header, HSTS from SECURE_HSTS_SECONDS ------------------------------
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
