"""HTTP clients for the stacks we start: one-shot `fetch`, and `Client` with cookies, over TLS
without verification (the stack's self-signed certificate), optionally from another loopback
source address (nginx's limits count per address)."""

from __future__ import annotations

import http.client
import re
import ssl
import urllib.error
import urllib.request
from email.message import Message
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


def fetch(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    """GET `url`: status, headers and body, also for answers >= 400."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - our loopback stack
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class Client:
    """A cookie-keeping client of one origin (`base`, e.g. "https://localhost:8443")."""

    def __init__(
        self,
        base: str,
        *,
        source: str | None = None,
        headers: dict[str, str] | None = None,
        origin: str | None = None,
    ) -> None:
        self.base = base
        # What a browser would send as Origin: the address the user sees (nginx's, not
        # gunicorn's when a check goes straight to gunicorn).
        self.origin = origin or base
        self.source = source
        self.cookies: SimpleCookie = SimpleCookie()
        self.headers = headers or {}

    def request(
        self,
        method: str,
        path: str,
        *,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> tuple[int, Message, bytes]:
        parts = urlsplit(self.base)
        host, port = parts.hostname or "127.0.0.1", parts.port
        source = (self.source, 0) if self.source else None
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=context, source_address=source
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=source)
        sent = {**self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            data = resp.read()
            for header in resp.headers.get_all("Set-Cookie") or []:
                self.cookies.load(header)
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def form_post(self, path: str, form: dict[str, str]) -> tuple[int, Message, bytes]:
        """GET the form for its CSRF token, then POST it as a browser would (Origin, Referer)."""
        _, _, page = self.request("GET", path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        fields = {"csrfmiddlewaretoken": token.group(1).decode() if token else "", **form}
        return self.request(
            "POST",
            path,
            body=urlencode(fields),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.origin,
                "Referer": f"{self.origin}{path}",
            },
        )
