# ruff: noqa: E501
"""The scripted attacks on the stack: slow clients (slowhttptest), a stock race, a cache flood
and brute force on the logins."""

from __future__ import annotations

import concurrent.futures
import json
import re
import threading
import time
from collections import Counter
from pathlib import Path

from findings import Check, Report
from prod_stack import HOST, REDIS_URL, SecurityStack, api_token, app_client, django_shell

from harness import Client, run

SLOW_CONNECTIONS = 1000
SLOW_SECONDS = 30
NORMAL_CLIENT_ADDRESS = "127.0.0.2"
MIN_NORMAL_SUCCESS = 0.99
BRUTE_FORCE_ATTEMPTS = 30
FLOOD_REQUESTS = 200
RACE_STOCK = 5
RACE_BUYERS = 20


def normal_client(sec: SecurityStack, stop: threading.Event, tally: Counter) -> None:
    """A shopper on another address: fetches pages one after another during the attack."""
    client = Client(f"https://127.0.0.1:{sec.https_port}", source=NORMAL_CLIENT_ADDRESS)
    while not stop.is_set():
        try:
            status = client.request("GET", "/products/", headers={"Host": HOST}, timeout=10)[0]
            tally["ok" if status == 200 else f"status {status}"] += 1
        except OSError as exc:
            tally[type(exc).__name__] += 1
        time.sleep(0.2)


def check_slowhttp(report: Report, sec: SecurityStack, workdir: Path) -> None:
    for mode, flag in (("slowloris (slow headers)", "-H"), ("slow body (R-U-Dead-Yet)", "-B")):
        stop, tally = threading.Event(), Counter()
        shopper = threading.Thread(target=normal_client, args=(sec, stop, tally), daemon=True)
        shopper.start()
        stats = workdir / f"slowhttptest{flag}"
        done = run(
            [
                "slowhttptest", flag, "-c", str(SLOW_CONNECTIONS), "-r", "200", "-i", "10",
                "-l", str(SLOW_SECONDS), "-x", "24", "-p", "3", "-t", "POST" if flag == "-B" else "GET",
                "-u", f"https://127.0.0.1:{sec.https_port}/accounts/login/", "-g", "-o", str(stats),
            ],
            timeout=SLOW_SECONDS + 120,
        )  # fmt: skip
        stop.set()
        shopper.join(timeout=15)
        total = sum(tally.values())
        success = tally["ok"] / total if total else 0.0
        plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
        summary = re.findall(r"pending:[^\n]*", plain)
        report.add(
            Check(
                f"slowhttptest {mode}",
                f"{SLOW_CONNECTIONS} slow connections; a normal client on "
                f"{NORMAL_CLIENT_ADDRESS} keeps >= {MIN_NORMAL_SUCCESS:.0%} success",
                total > 10 and success >= MIN_NORMAL_SUCCESS,
                {"normal_client_requests": total, "success": round(success, 4), **tally},
                " | ".join(summary[-4:]),
            )
        )


def attack_stock_race(report: Report, sec: SecurityStack) -> None:
    slug = django_shell(
        sec,
        "from storefront.catalog.models import Product;"
        "p = Product.objects.filter(is_active=True).order_by('id').first();"
        f"Product.objects.filter(pk=p.pk).update(stock={RACE_STOCK});"
        "from storefront import caching; caching.bump_namespace('catalog');"
        "print(p.slug)",
    ).splitlines()[-1]
    units_sold = (
        "from storefront.catalog.models import Product; from storefront.orders.models import OrderLine;"
        f"p = Product.objects.get(slug={slug!r});"
        "print(p.stock, sum(OrderLine.objects.filter(product=p).values_list('quantity', flat=True)))"
    )
    sold_before = int(django_shell(sec, units_sold).split()[-1])
    tokens = [api_token(sec, f"shopper{n:05d}", "shopper-2026") for n in range(1, RACE_BUYERS + 1)]
    barrier = threading.Barrier(RACE_BUYERS)

    def buy(token: str) -> int:
        client = Client(sec.https_url, headers={"Host": f"{HOST}:{sec.https_port}"})
        barrier.wait(timeout=30)
        return client.request(
            "POST",
            "/api/orders/",
            body=json.dumps({"items": [{"product": slug, "quantity": 1}]}),
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
            timeout=30,
        )[0]

    with concurrent.futures.ThreadPoolExecutor(RACE_BUYERS) as pool:
        statuses = Counter(pool.map(buy, tokens))
    counts = django_shell(sec, units_sold).split()
    stock_left, sold = int(counts[-2]), int(counts[-1]) - sold_before
    placed = statuses.get(201, 0)
    report.add(
        Check(
            "attack: stock race",
            f"{RACE_BUYERS} concurrent buyers of a product with stock {RACE_STOCK} "
            "(API through nginx): exactly that many orders, 0 oversold, the rest a clear 409",
            placed == RACE_STOCK
            and stock_left == 0
            and statuses.get(409, 0) == RACE_BUYERS - RACE_STOCK,
            {"statuses": dict(statuses), "stock_left": stock_left, "units_in_orders": sold},
        )
    )


def redis_keys(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        return sum(1 for _ in client.scan_iter(match=f"*{prefix}*", count=1000))
    finally:
        client.close()


def attack_cache_flood(report: Report, sec: SecurityStack) -> None:
    client = app_client(sec)
    client.request("GET", "/products/")  # the canonical page, cached once
    before = redis_keys(sec.cache_prefix)
    statuses = Counter(
        client.request("GET", f"/products/?junk={n}")[0] for n in range(FLOOD_REQUESTS)
    )
    added = redis_keys(sec.cache_prefix) - before
    report.add(
        Check(
            "attack: cache flood",
            f"{FLOOD_REQUESTS} anonymous requests with junk query strings add at most 1 key",
            added <= 1,
            {"statuses": dict(statuses), "redis_keys_added": added},
        )
    )


def attack_brute_force(report: Report, sec: SecurityStack) -> None:
    # Through nginx: its auth zone (5/min per address, burst 5) answers the rest with 429.
    client = Client(sec.https_url, headers={"Host": f"{HOST}:{sec.https_port}"})
    statuses = Counter()
    started = time.monotonic()
    for n in range(BRUTE_FORCE_ATTEMPTS):
        statuses[
            client.form_post("/admin/login/", {"username": "staff", "password": f"guess{n}"})[0]
        ] += 1
    elapsed = time.monotonic() - started
    reached = BRUTE_FORCE_ATTEMPTS - statuses.get(429, 0)
    report.add(
        Check(
            "attack: brute force /admin/login/ through nginx",
            f"{BRUTE_FORCE_ATTEMPTS} wrong passwords: at most 6 reach Django (5/min + burst 5)",
            reached <= 6,
            {"statuses": dict(statuses), "reached_django": reached, "seconds": round(elapsed, 1)},
        )
    )
    # Past nginx (many addresses, or a slow attacker): the account locks in Django itself, and
    # a forged X-Forwarded-For does not reset it.
    victim = "shopper00030"
    direct = app_client(sec)
    statuses = Counter()
    for n in range(12):
        direct.headers["X-Forwarded-For"] = f"203.0.113.{n}"
        statuses[
            direct.form_post("/accounts/login/", {"username": victim, "password": f"guess{n}"})[0]
        ] += 1
    right = direct.form_post("/accounts/login/", {"username": victim, "password": "shopper-2026"})
    report.add(
        Check(
            "attack: brute force one account past nginx (django-axes)",
            "locked after the failure limit: the right password is refused (429) while locked, "
            "forged X-Forwarded-For does not help",
            right[0] == 429,
            {"wrong_password_statuses": dict(statuses), "right_password_status": right[0]},
        )
    )
