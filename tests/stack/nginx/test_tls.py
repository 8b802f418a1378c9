"""HTTPS: TLS 1.2 and 1.3 only, Secure cookies over HTTPS only, compressed pages that never repeat
a secret (BREACH)."""

from __future__ import annotations

import http.client
import re
import ssl
import warnings
import zlib
from http.cookies import SimpleCookie

import brotli
import pytest

from storefront.seeding import DEMO_CUSTOMER
from tests.stack.nginx.helpers import Answer, Nginx, fetch

pytestmark = pytest.mark.stack


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
