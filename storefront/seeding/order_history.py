"""A year of seeded orders and their lines, in time order, loaded in chunks as they are made."""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Iterator
from datetime import timedelta

from storefront.bulk_load import CHUNK_ROWS, TableLoader
from storefront.orders import bulk as order_bulk
from storefront.orders.models import Order
from storefront.orders.services import NUMBER_ALPHABET
from storefront.seeding.catalogue import Catalogue, money
from storefront.seeding.clock import HISTORY_DAYS, Clock
from storefront.seeding.report import Progress, SeedReport, TableLoad
from storefront.seeding.shoppers import Shopper

# The staff dashboard charts the last 30 days; each of them gets at least this many orders.
CHART_DAYS = 30
MIN_ORDERS_PER_CHART_DAY = 3
DEMO_ORDER_COUNT = 12
# The demo customer's orders fall within this many days, so their dashboard looks current.
DEMO_ORDER_WINDOW_DAYS = 180
CANCELLED_SHARE = 0.03

# Line counts 1-5 and quantities 1-4 as cumulative shares; about 2.5 lines per order.
LINE_COUNT_CUMULATIVE = (0.25, 0.53, 0.75, 0.90, 1.0)
QUANTITY_CUMULATIVE = (0.65, 0.87, 0.96, 1.0)


def _status_table(days_ago: int) -> tuple[tuple[float, str], ...]:
    """Cumulative status shares for an order placed `days_ago` days before today.

    Fresh orders are still placed or paid; a fortnight on, nearly everything is delivered.
    """
    s = Order.Status
    if days_ago <= 2:
        shares = ((s.PLACED, 0.5), (s.PAID, 0.5))
    elif days_ago <= 5:
        shares = ((s.PLACED, 0.1), (s.PAID, 0.4), (s.SHIPPED, 0.5))
    elif days_ago <= 12:
        shares = ((s.PAID, 0.05), (s.SHIPPED, 0.35), (s.DELIVERED, 0.6))
    else:
        shares = ((s.SHIPPED, 0.02), (s.DELIVERED, 0.98))
    table = [(CANCELLED_SHARE, s.CANCELLED.value)]
    total = CANCELLED_SHARE
    for status, share in shares:
        total += share * (1 - CANCELLED_SHARE)
        table.append((total, status.value))
    table[-1] = (1.0, table[-1][1])
    return tuple(table)


def _orders_per_day(*, rng: random.Random, count: int, clock: Clock) -> list[int]:
    """How many orders fall on each of the HISTORY_DAYS days before today, oldest first.

    Business grows over the year and weekends are busier; every chart day gets a few.
    """
    weights = []
    for days_ago in range(HISTORY_DAYS, 0, -1):
        trend = 1.0 + 1.5 * (HISTORY_DAYS - days_ago) / HISTORY_DAYS
        weekend = (clock.today - timedelta(days=days_ago)).weekday() >= 5
        weights.append(trend * (1.15 if weekend else 1.0))
    picks = rng.choices(
        range(HISTORY_DAYS), cum_weights=list(itertools.accumulate(weights)), k=count
    )
    per_day = [0] * HISTORY_DAYS
    for day in picks:
        per_day[day] += 1
    first_chart_day = HISTORY_DAYS - CHART_DAYS
    floor = min(MIN_ORDERS_PER_CHART_DAY, count // CHART_DAYS)
    floors = [0] * first_chart_day + [floor] * CHART_DAYS
    for day in range(first_chart_day, HISTORY_DAYS):
        while per_day[day] < floor:
            # Take from the day with the most to spare; one exists, as count >= CHART_DAYS*floor.
            donor = max(range(HISTORY_DAYS), key=lambda d: per_day[d] - floors[d])
            per_day[donor] -= 1
            per_day[day] += 1
    return per_day


def _demo_slots(*, rng: random.Random, per_day: list[int]) -> set[int]:
    """Positions (in time order) of the demo customer's orders, spread over recent months."""
    total = sum(per_day)
    wanted = min(DEMO_ORDER_COUNT, total // 4)
    if not wanted:
        return set()
    # One order from the last two days, still placed or paid; the rest spread over the window.
    recent = min(sum(per_day[-2:]), total) or 1
    start = min(sum(per_day[: HISTORY_DAYS - DEMO_ORDER_WINDOW_DAYS]), total - wanted)
    span = max(total - recent - start, 0) / (wanted - 1) if wanted > 1 else 0
    slots = {start + int(span * (i + rng.random())) for i in range(wanted - 1)}
    slots.add(total - 1 - int(rng.random() * recent))
    return slots


def _order_numbers(rng: random.Random) -> Iterator[str]:
    """Unique "SF-XXXX-XXXX" numbers: 31^8 possibilities, drawn without repeats."""
    pairs = [a + b for a in NUMBER_ALPHABET for b in NUMBER_ALPHABET]
    base = len(pairs)
    space = base**4
    seen: set[int] = set()
    random_ = rng.random
    while True:
        value = int(random_() * space)
        if value in seen:
            continue
        seen.add(value)
        high, low = divmod(value, base * base)
        head = pairs[high // base] + pairs[high % base]
        tail = pairs[low // base] + pairs[low % base]
        yield f"SF-{head}-{tail}"


def load_orders(
    *,
    loader: TableLoader,
    report: SeedReport,
    rng: random.Random,
    count: int,
    catalogue: Catalogue,
    shoppers: list[Shopper],
    demo: Shopper,
    clock: Clock,
    say: Progress,
) -> None:
    """Generate `count` orders in time order with their lines, writing both in chunks.

    Lines are generated with their order, so generation time counts towards orders.
    """
    order_stats = report.tables.setdefault("orders", TableLoad())
    line_stats = report.tables.setdefault("order lines", TableLoad())
    per_day = _orders_per_day(rng=rng, count=count, clock=clock)
    demo_slots = _demo_slots(rng=rng, per_day=per_day)
    pool = list(shoppers) or [demo]
    rng.shuffle(pool)
    numbers = _order_numbers(rng)

    names, skus, cents = catalogue.names, catalogue.skus, catalogue.price_cents
    price_text = [money(c) for c in cents]
    popularity, created = catalogue.popularity, catalogue.created
    fmt = loader.format_timestamp
    random_ = rng.random
    pick = bisect.bisect_right
    pool_size = len(pool)

    orders: list[tuple] = []  # rows in ORDER_BULK_COLUMNS order
    lines: list[tuple] = []  # rows in LINE_BULK_COLUMNS order
    order_id = line_id = 0
    started = time.perf_counter()
    report_every = max(CHUNK_ROWS, count // 10)

    def flush() -> None:
        nonlocal started
        order_bulk.bulk_load_orders(loader=loader, rows=orders)
        wrote_orders = time.perf_counter()
        order_bulk.bulk_load_order_lines(loader=loader, rows=lines)
        # Orders get the time since the last flush (generating this chunk) plus their write.
        order_stats.seconds += wrote_orders - started
        started = time.perf_counter()
        line_stats.seconds += started - wrote_orders
        order_stats.rows += len(orders)
        line_stats.rows += len(lines)
        if order_stats.rows // report_every != (order_stats.rows - len(orders)) // report_every:
            say(f"Orders: {order_stats.rows:,} of {count:,} ({line_stats.rows:,} lines).")
        orders.clear()
        lines.clear()

    for day, day_count in enumerate(per_day):
        if not day_count:
            continue
        days_ago = HISTORY_DAYS - day
        start, end = clock.day_start(days_ago), clock.day_start(days_ago - 1)
        # Products on sale by the end of that day; at least one so early orders are possible.
        available = max(pick(created, end), 1)
        top = popularity[available - 1]
        statuses = _status_table(days_ago)
        moments = sorted(start + int(random_() * (end - start)) for _ in range(day_count))
        for moment in moments:
            position = order_id
            order_id += 1
            shopper = demo if position in demo_slots else pool[int(random_() * pool_size)]
            roll = random_()
            status = next(s for threshold, s in statuses if roll < threshold)
            roll = random_()
            wanted = next(
                n for n, threshold in enumerate(LINE_COUNT_CUMULATIVE, 1) if roll < threshold
            )
            wanted = min(wanted, available)
            chosen: list[int] = []
            attempts = 0
            while len(chosen) < wanted:
                attempts += 1
                # Popularity is heavy-tailed; after a few clashes fall back to any product.
                if attempts <= 12:
                    index = pick(popularity, random_() * top, 0, available)
                else:
                    index = int(random_() * available)
                if index not in chosen:
                    chosen.append(index)
            total = items = 0
            for index in chosen:
                roll = random_()
                quantity = next(
                    q for q, threshold in enumerate(QUANTITY_CUMULATIVE, 1) if roll < threshold
                )
                line_id += 1
                lines.append(
                    (
                        line_id,
                        order_id,
                        index + 1,
                        names[index],
                        skus[index],
                        price_text[index],
                        quantity,
                    )
                )
                total += cents[index] * quantity
                items += quantity
            orders.append(
                (
                    order_id,
                    shopper.id,
                    next(numbers),
                    status,
                    money(total),
                    items,
                    shopper.shipping_name,
                    shopper.shipping_address,
                    fmt(moment),
                )
            )
            if len(orders) >= CHUNK_ROWS:
                flush()
    if orders:
        flush()
