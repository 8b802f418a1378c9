"""Worker memory over time: the RSS of one gunicorn worker after N requests of a page mix.

One sync worker (worker recycling off: GUNICORN_MAX_REQUESTS=0, as every bench gunicorn), the
page cache storing nothing (every request renders its page: the allocation-heavy path), driven
straight (no nginx) by a few client threads issuing an exact number of requests from a fixed
mix: home, listing pages and sorts, category listings, searches, product pages (a couple of
hundred distinct ones), the login page, the signed-in listing (session cookie) and hello.
RSS (and USS, the worker's own pages) is read with psutil when the count is reached.
"""

from __future__ import annotations

import http.client
import itertools
import threading
from urllib.parse import quote, urlsplit


def page_mix(shop: dict, signed_in_cookie: str | None) -> list[tuple[str, dict[str, str]]]:
    """The paths requested in turn (with their headers), one cycle of the mix."""
    anonymous: list[str] = [
        "/",
        "/products/",
        "/products/?sort=price_asc",
        "/products/?sort=name",
        "/accounts/login/",
        "/__bench__/hello/",
    ]
    anonymous += [f"/products/?category={slug}" for slug in shop["categories"]]
    anonymous += [f"/products/?q={quote(word)}" for word in shop["search_words"]]
    products = [f"/products/{slug}/" for slug in shop["slugs"]]
    mix: list[tuple[str, dict[str, str]]] = []
    # Interleaved: each product page once per cycle, the other pages in between.
    other = itertools.cycle(anonymous)
    for i, path in enumerate(products):
        mix.append((path, {}))
        if i % 2 == 0:
            mix.append((next(other), {}))
        if signed_in_cookie and i % 10 == 0:
            mix.append(("/products/", {"Cookie": signed_in_cookie}))
    return mix or [(p, {}) for p in anonymous]


class Driver:
    """Exactly `count` more requests from the mix, by `threads` clients; statuses counted."""

    def __init__(self, base: str, mix: list[tuple[str, dict[str, str]]], threads: int = 2) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.mix = mix
        self.threads = threads
        self.position = 0
        self.statuses: dict[str, int] = {}
        self.failures: list[str] = []
        self.cache_headers: dict[str, int] = {}
        self._lock = threading.Lock()

    def _next(self) -> tuple[str, dict[str, str]] | None:
        with self._lock:
            if self._remaining <= 0:
                return None
            self._remaining -= 1
            item = self.mix[self.position % len(self.mix)]
            self.position += 1
            return item

    def _client(self) -> None:
        while (item := self._next()) is not None:
            path, headers = item
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                cache = response.getheader("X-Storefront-Cache")
                if cache:
                    with self._lock:
                        self.cache_headers[cache] = self.cache_headers.get(cache, 0) + 1
            except OSError as exc:
                status = 0
                with self._lock:
                    self.failures.append(f"{path}: {exc}"[:200])
            finally:
                conn.close()
            key = f"{status // 100}xx" if status else "socket error"
            with self._lock:
                self.statuses[key] = self.statuses.get(key, 0) + 1
                if status and not 200 <= status < 300 and len(self.failures) < 20:
                    self.failures.append(f"{path}: {status}")

    def run(self, count: int) -> None:
        self._remaining = count
        workers = [threading.Thread(target=self._client, daemon=True) for _ in range(self.threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=3600)


def worker_memory(pid: int) -> dict:
    import psutil

    proc = psutil.Process(pid)
    full = proc.memory_full_info()
    return {"rss_mb": round(full.rss / 2**20, 1), "uss_mb": round(full.uss / 2**20, 1)}
