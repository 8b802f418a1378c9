"""Helpers for tests that race a writer against a checkout on PostgreSQL.

The pattern (as in test_services.race_checkouts): each party runs on its own thread, hence its
own database connection, in a test marked `@pytest.mark.django_db(transaction=True)` so that
what one commits the others see. `checkout_held_open` places an order inside a transaction kept
open, so its product row locks are held while another writer runs; `blocked_on_a_lock` tells
when that writer is waiting for them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection, transaction

from storefront.orders.models import Order
from storefront.orders.services import OrderItem, place_order


class Outcome:
    """What a callable run on a thread returned or raised."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def in_thread(
    target: Callable[[], Any], *, name: str = "writer"
) -> tuple[threading.Thread, Outcome]:
    """Start `target` on a thread with its own connection (closed at the end)."""
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.value = target()
        except BaseException as error:
            outcome.error = error
        finally:
            connection.close()
            outcome.done.set()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, outcome


def finish(thread: threading.Thread, outcome: Outcome, timeout: float = 30) -> Any:
    thread.join(timeout=timeout)
    assert not thread.is_alive(), "the writer did not finish"
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def blocked_on_a_lock(count: int = 1, timeout: float = 10) -> None:
    """Wait until `count` other sessions of this database wait for a lock (a row lock, or an
    advisory lock), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            (waiting,) = cursor.fetchone()
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} session(s) waiting for a lock"
        time.sleep(0.02)


@contextlib.contextmanager
def checkout_held_open(*, user: Any, product: Any, quantity: int = 1) -> Iterator[Outcome]:
    """A checkout of `quantity` × `product` that has locked and decremented the product but
    not committed: the block runs while it holds the row lock; leaving it commits the order
    (the outcome's value) and waits for that."""
    locked, release = threading.Event(), threading.Event()
    outcome = Outcome()

    def run() -> None:
        try:
            with transaction.atomic():
                outcome.value = place_order(
                    user=user, items=[OrderItem(product_id=product.id, quantity=quantity)]
                )
                locked.set()
                assert release.wait(timeout=30), "never released"
        except BaseException as error:
            outcome.error = error
        finally:
            locked.set()
            connection.close()
            outcome.done.set()

    thread = threading.Thread(target=run, name="checkout", daemon=True)
    thread.start()
    assert locked.wait(timeout=10), "the checkout did not start"
    if outcome.error is not None:
        raise outcome.error
    try:
        yield outcome
    finally:
        release.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the checkout did not finish"
    if outcome.error is not None:
        raise outcome.error
    assert isinstance(outcome.value, Order)
