"""The stack `make run` serves, spoken to the way browsers speak: form token, cookies, and the
`Origin` and `Referer` headers every browser adds to a form POST.

The browser journeys (test_browser.py) drive Chromium through the same stack; these tests pin
the HTTP-level facts behind them, on HTTP and HTTPS: a browser-style login answers 302 (it was
403 "form expired" while nginx dropped the port from Host), a foreign Origin is still refused,
and absolute URLs (API pagination, redirects) carry the scheme, host and port the client used.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import pytest

from harness.served import ServedStack, mail_text
from storefront.seeding import DEMO_CUSTOMER

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("served-stack")]

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class BrowserLikeClient:
    """Keeps cookies and sends what Chromium sends with a form POST (Origin, Referer)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.cookies = SimpleCookie()

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.origin)
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the stack's self-signed certificate
            return http.client.HTTPSConnection(parts.netloc, timeout=15, context=context)
        return http.client.HTTPConnection(parts.netloc, timeout=15)

    def request(
        self, method: str, path: str, *, form: dict[str, str] | None = None, **headers: str
    ) -> Reply:
        conn = self._connection()
        sent = {"User-Agent": "Mozilla/5.0 (browser-like test client)", **headers}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()
        for header in reply.headers.get_all("Set-Cookie") or []:
            self.cookies.load(header)
        return reply

    def form_token(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status == 200, (path, page.status)
        match = CSRF_INPUT.search(page.body.decode())
        assert match, f"no CSRF token in {path}"
        return match.group(1)

    def post_form(self, path: str, form: dict[str, str], *, origin: str | None = None) -> Reply:
        """POST as a browser would after showing `path`: Origin and Referer of this site."""
        token = self.form_token(path)
        return self.request(
            "POST",
            path,
            form={"csrfmiddlewaretoken": token, **form},
            Origin=origin or self.origin,
            Referer=f"{self.origin}{path}",
        )


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_browser_style_login_is_302_on_http_and_https(
    served_stack: ServedStack, scheme: str
) -> None:
    client = BrowserLikeClient(served_stack.url(scheme))
    reply = client.post_form(
        "/accounts/login/", {"username": DEMO_CUSTOMER[0], "password": DEMO_CUSTOMER[1]}
    )
    assert reply.status == 302, (reply.status, reply.body[:500], served_stack.log_tail())
    assert reply.headers["Location"] == "/dashboard/"
    dashboard = client.request("GET", "/dashboard/")
    assert dashboard.status == 200
    assert b'action="/accounts/logout/"' in dashboard.body


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_form_post_from_another_origin_is_still_refused(
    served_stack: ServedStack, scheme: str
) -> None:
    client = BrowserLikeClient(served_stack.url(scheme))
    evil = "http://127.0.0.1:9" if scheme == "http" else "https://127.0.0.1:9"
    reply = client.post_form(
        "/accounts/login/",
        {"username": DEMO_CUSTOMER[0], "password": DEMO_CUSTOMER[1]},
        origin=evil,
    )
    assert reply.status == 403
    assert b"form" in reply.body.lower()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_api_pagination_links_carry_scheme_host_and_port(
    served_stack: ServedStack, scheme: str
) -> None:
    origin = served_stack.url(scheme)
    reply = BrowserLikeClient(origin).request(
        "GET", "/api/products/?page_size=5", Accept="application/json"
    )
    assert reply.status == 200, reply.body[:300]
    links = json.loads(reply.body)
    assert links["next"].startswith(f"{origin}/api/products/?"), links["next"]


def test_http_redirects_keep_the_port(served_stack: ServedStack) -> None:
    """Django's own redirects (login required) stay on the address the browser used."""
    origin = served_stack.url("http")
    reply = BrowserLikeClient(origin).request("GET", "/checkout/")
    assert reply.status == 302
    location = reply.headers["Location"]
    assert location.startswith("/accounts/login/") or location.startswith(origin), location


def test_run_sets_the_site_url_for_emails_to_the_address_it_serves(
    served_stack: ServedStack,
) -> None:
    """Celery sends the order confirmation with no request to read the address from: run.sh
    gives it STOREFRONT_SITE_URL, and the link in the email opens the order on this stack."""
    client = BrowserLikeClient(served_stack.url("http"))
    assert (
        client.post_form(
            "/accounts/login/", {"username": DEMO_CUSTOMER[0], "password": DEMO_CUSTOMER[1]}
        ).status
        == 302
    )
    listing = client.request("GET", "/products/")
    slug = re.search(rb'href="/products/([-\w]+)/"', listing.body)
    assert slug
    product = client.request("GET", f"/products/{slug.group(1).decode()}/")
    cart_add = re.search(rb'action="(/cart/add/\d+/)"', product.body)
    assert cart_add
    token = CSRF_INPUT.search(product.body.decode())
    assert token
    added = client.request(
        "POST",
        cart_add.group(1).decode(),
        form={"csrfmiddlewaretoken": token.group(1), "quantity": "1"},
        Origin=client.origin,
        Referer=f"{client.origin}/products/{slug.group(1).decode()}/",
    )
    assert added.status == 302, added.body[:300]
    placed = client.post_form(
        "/checkout/",
        {"shipping_name": "Email Link", "shipping_address": "1 Link Street\n12345 Porttown"},
    )
    assert placed.status == 302, placed.body[:500]
    order_path = placed.headers["Location"]
    assert re.fullmatch(r"/orders/[^/]+/", order_path), order_path
    confirmation = served_stack.wait_for_mail(order_path)
    assert f"{served_stack.http_url}{order_path}" in mail_text(confirmation)
