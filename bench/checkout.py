"""Signed-in shoppers over HTTP, as a browser is: the login form POSTed with its CSRF token,
cart changes and the checkout form POSTed the same way (harness.Client keeps the cookies).

- `signed_in_session`: one seeded shopper logged in with a cart of two items; the cookies a
  browser then sends with every page (what the signed-in listing run gives wrk).
- `run_checkout`: concurrent buyers, each a thread logged in as a different seeded shopper,
  placing a bounded number of orders through nginx (add to cart, open the checkout page,
  POST it); orders per second, the checkout POST's latency, and every status seen.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urlencode

import harness

LOGIN = "/accounts/login/"
CHECKOUT = "/checkout/"


class FormFields(HTMLParser):
    """The named fields of one form (inputs' values, textareas' text) in a page."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif self.inside and tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""
        elif self.inside and tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.fields[self._textarea] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def form_fields(page: bytes, form_id: str) -> dict[str, str]:
    parser = FormFields(form_id)
    parser.feed(page.decode("utf-8", errors="replace"))
    return parser.fields


class Shopper:
    """One browser: a cookie-keeping client that POSTs forms with the CSRF token."""

    def __init__(self, base: str) -> None:
        self.client = harness.Client(base)
        self.statuses: dict[str, int] = {}

    def _count(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def post(self, what: str, path: str, form: dict[str, str]) -> tuple[int, str]:
        """POST `form` (with the CSRF cookie's token); status and Location."""
        token = self.client.cookies["csrftoken"].value if "csrftoken" in self.client.cookies else ""
        status, headers, _ = self.client.request(
            "POST",
            path,
            body=urlencode({"csrfmiddlewaretoken": token, **form}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.client.origin,
                "Referer": f"{self.client.origin}{path}",
            },
        )
        self._count(what, status)
        return status, headers.get("Location") or ""

    def get(self, what: str, path: str) -> tuple[int, bytes]:
        status, _, body = self.client.request("GET", path)
        self._count(what, status)
        return status, body

    def login(self, username: str, password: str) -> None:
        status, _, page = self.client.request("GET", LOGIN)
        self._count("login form", status)
        fields = form_fields(page, "login-form")
        status, location = self.post(
            "login", LOGIN, {**fields, "username": username, "password": password}
        )
        if status != 302 or LOGIN in location:
            raise RuntimeError(f"login as {username} answered {status} {location!r}")

    def add(self, product_id: int, quantity: int = 1) -> int:
        status, _ = self.post(
            "add to cart", f"/cart/add/{product_id}/", {"quantity": str(quantity)}
        )
        return status

    def remove(self, product_id: int) -> int:
        return self.post("remove from cart", f"/cart/remove/{product_id}/", {})[0]

    def cookie_header(self) -> str:
        """The cookies a browser sends with a page: session and CSRF (a `messages` cookie is
        consumed by the next page it renders, so it is left out)."""
        return "; ".join(
            f"{k}={m.value}" for k, m in self.client.cookies.items() if k != "messages" and m.value
        )


def signed_in_session(base: str, username: str, password: str, product_ids: list[int]) -> dict:
    """Log `username` in and put one unit of each of `product_ids` in the cart; the Cookie
    header that browser sends, and the badge its pages must show."""
    shopper = Shopper(base)
    shopper.login(username, password)
    for pid in product_ids:
        status = shopper.add(pid)
        if status != 302:
            raise RuntimeError(f"adding product {pid} to {username}'s cart answered {status}")
    shopper.get("cart", "/cart/")  # the redirect target: shows (and consumes) the messages
    return {
        "username": username,
        "cookie": shopper.cookie_header(),
        "cart_items": len(product_ids),
        "badge": f'id="cart-count">{len(product_ids)}<'.encode(),
    }


def _pct(samples: list[float], p: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))], 2)


def run_checkout(
    base: str,
    *,
    buyers: list[str],
    password: str,
    hot: dict | None,
    pool: list[dict],
    orders_per_buyer: int,
    seed: int = 1,
) -> dict:
    """`len(buyers)` threads, each logged in as one buyer, each placing `orders_per_buyer`
    orders: add one unit of the hot product (while the shop has it) and one of a pool product,
    GET the checkout page (its form: CSRF token, idempotency key, shipping fields), POST it.
    A placed order answers 302 to the order's page; a 409 is a refusal (the hot product sold
    out between cart and checkout), after which the buyer drops it from the cart. Anything
    else is counted as unexpected (the bench then fails). Logins happen before the clock
    starts; the run's time is from the first buyer's start to the last one's end."""
    shoppers = [Shopper(base) for _ in buyers]
    for shopper, username in zip(shoppers, buyers, strict=True):
        shopper.login(username, password)
    start_line = threading.Barrier(len(shoppers) + 1)
    latencies: list[float] = []  # ms of each checkout POST that placed an order
    refused_ms: list[float] = []
    outcome = {"placed": 0, "refused": 0, "unexpected": 0, "errors": []}
    lock = threading.Lock()

    def buy(index: int, shopper: Shopper) -> None:
        rng = random.Random(seed * 1000 + index)
        hot_left = hot is not None
        start_line.wait()
        for _ in range(orders_per_buyer):
            try:
                if hot_left:
                    status = shopper.add(hot["id"])
                    if status == 409:  # sold out: "Only N in stock" / "out of stock"
                        hot_left = False
                    elif status != 302:
                        raise RuntimeError(f"add hot product: {status}")
                status = shopper.add(rng.choice(pool)["id"])
                if status != 302:
                    raise RuntimeError(f"add pool product: {status}")
                status, page = shopper.get("checkout page", CHECKOUT)
                if status != 200:
                    raise RuntimeError(f"checkout page: {status}")
                fields = form_fields(page, "checkout-form")
                fields.pop("csrfmiddlewaretoken", None)
                started = time.perf_counter()
                status, location = shopper.post("checkout", CHECKOUT, fields)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if status == 302 and "/orders/" in location:
                        outcome["placed"] += 1
                        latencies.append(elapsed)
                    elif status == 409:
                        outcome["refused"] += 1
                        refused_ms.append(elapsed)
                    else:
                        outcome["unexpected"] += 1
                        outcome["errors"].append(f"checkout POST {status} {location}")
                if status == 409 and hot is not None:
                    hot_left = False
                    shopper.remove(hot["id"])
            except Exception as exc:  # a failed step: counted, the buyer goes on
                with lock:
                    outcome["unexpected"] += 1
                    outcome["errors"].append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [
        threading.Thread(target=buy, args=(i, s), daemon=True) for i, s in enumerate(shoppers)
    ]
    for t in threads:
        t.start()
    start_line.wait()
    started = time.monotonic()
    for t in threads:
        t.join(timeout=600)
    seconds = time.monotonic() - started
    statuses: dict[str, int] = {}
    for shopper in shoppers:
        for key, n in shopper.statuses.items():
            statuses[key] = statuses.get(key, 0) + n
    return {
        "buyers": len(buyers),
        "orders_per_buyer": orders_per_buyer,
        "attempts": len(buyers) * orders_per_buyer,
        "placed": outcome["placed"],
        "refused_sold_out": outcome["refused"],
        "unexpected": outcome["unexpected"],
        "errors": outcome["errors"][:20],
        "seconds": round(seconds, 2),
        "orders_per_s": round(outcome["placed"] / seconds, 2) if seconds else None,
        "checkout_p50_ms": _pct(latencies, 50),
        "checkout_p95_ms": _pct(latencies, 95),
        "checkout_max_ms": round(max(latencies), 2) if latencies else None,
        "checkout_mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "refused_p95_ms": _pct(refused_ms, 95),
        "statuses": dict(sorted(statuses.items())),
    }
