"""The microcache (deploy/nginx snippets/microcache-on.conf): anonymous listings are cached for a
second, personal or unsafe requests never are, and stale copies cover refreshes and a dead app."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from http.cookies import SimpleCookie
from pathlib import Path

import brotli
import pytest

from storefront.seeding import DEMO_CUSTOMER, DEMO_CUSTOMER_PROFILE
from tests.stack.conftest import REPO_ROOT, StackServer, start_gunicorn, stop_process
from tests.stack.nginx.helpers import (
    Answer,
    Nginx,
    assert_security_headers,
    fetch,
    log_in_through_nginx,
    render_nginx,
    start_nginx,
    stop,
)

pytestmark = pytest.mark.stack


# The package's nginx runs with the defaults: microcache on, pages fresh for 1 s. Each test uses
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
    """The access logs of both gunicorns behind the package's nginx."""
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


def test_product_pages_are_stored_they_set_no_cookie(
    nginx: Nginx, stack_server: StackServer
) -> None:
    """An anonymous product page holds no CSRF token (its add-to-cart form fetches one when
    submitted) and sets no cookie, so nginx stores it like a listing: the app answers once."""
    path = f"/products/{product_slug(nginx.http_port)}/?v={token()}"
    answers = [fetch(nginx.http_port, path) for _ in range(3)]
    for answer in answers:
        assert answer.status == 200
        assert "set-cookie" not in answer.headers, answer.headers
        assert b'id="add-to-cart"' in answer.body and b"csrfmiddlewaretoken" not in answer.body
        assert_security_headers(answer)
    assert [cache_status(a) for a in answers] == ["MISS", "HIT", "HIT"]
    assert app_requests(app_logs(nginx, stack_server), "GET", path) == 1


def test_a_page_that_sets_a_cookie_is_never_stored(tmp_path: Path) -> None:
    """No catalog page sets a cookie for an anonymous visitor now; should one ever do, the
    microcache must not keep it (it would hand that cookie to every visitor)."""
    render_nginx.render(tmp_path, {"NGINX_MICROCACHE": "on"}, "production")
    snippet = next(tmp_path.rglob("microcache-on.conf")).read_text()
    [no_cache] = [line for line in snippet.splitlines() if line.startswith("proxy_no_cache ")]
    assert "$upstream_http_set_cookie" in no_cache
    assert not any(
        line.startswith("proxy_ignore_headers") and "Set-Cookie" in line
        for line in snippet.splitlines()
    )


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


def test_stale_listing_while_every_app_is_down_product_pages_get_502(
    stack_server: StackServer, tmp_path: Path
) -> None:
    """An nginx of its own in front of a gunicorn of its own, which the test stops: a cached
    listing and a cached product page are still served (STALE), a product page nginx never
    stored gets the friendly 502 page."""
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
            seen = fetch(server.http_port, product)
            assert seen.status == 200
            stop_process(app)
            time.sleep(MICROCACHE_EXPIRED_AFTER)
            stale = fetch(server.http_port, path)
            assert (stale.status, cache_status(stale)) == (200, "STALE"), stale.headers
            assert stale.body == listing.body
            assert_security_headers(stale)
            stale_product = fetch(server.http_port, product)
            assert (stale_product.status, cache_status(stale_product)) == (200, "STALE")
            assert stale_product.body == seen.body
            down = fetch(server.http_port, f"{product}?never={token()}")
            assert down.status == 502
            assert b"right back" in down.body
            assert_security_headers(down)
        finally:
            stop(server.proc)
    finally:
        stop_process(app)
