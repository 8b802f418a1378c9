"""Order emails through faults: the Celery worker killed, the broker restarted, SMTP down.

Orders are placed with the checkout's own service (`services.place_order`, in a `storefront
shell` of the stack's environment), so each one writes its outbox row and queues its
confirmation on commit exactly as a checkout does; the SMTP sink then says what arrived. An
email's Message-ID is derived from its delivery key (`order-confirmation.<order id>@...`), so a
second copy of one is recognisable.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

from faults.report import ScenarioResult, Target
from faults.stack import SMTP_RETRY_BACKOFF_MAX, FaultStack
from harness import log

EMAILS = 1000
KILLS = 3
KILL_EVERY = 3.0  # seconds between kills (the worker restarted at once, as systemd would)
# Pool processes of the stack's worker (faults/stack.py: --concurrency=2). Each kill can catch
# each of them between the SMTP server's acceptance and the 'sent' commit: at most that many
# second copies per kill (see worker_killed).
POOL_PROCESSES = 2
BROKER_EMAILS = 200
SMTP_EMAILS = 50
SMTP_DOWN_SECONDS = 45
CONFIRMATION_ID = re.compile(r"<order-confirmation\.(\d+)@")


def place_orders(stack: FaultStack, count: int) -> list[int]:
    """`count` orders placed by the checkout's service; returns their ids."""
    script = (
        "import json\n"
        "from storefront.accounts.models import User\n"
        "from storefront.orders import services\n"
        "users = list(User.objects.filter(username__startswith='faults').order_by('id'))\n"
        "ids = []\n"
        f"for i in range({count}):\n"
        "    order = services.place_order(user=users[i % len(users)], "
        f"items=[services.OrderItem(product_id={stack.stocked_ids[1]}, quantity=1)], "
        "shipping_name='Fault Tester', shipping_address='1 Loopback Road')\n"
        "    ids.append(order.id)\n"
        "print('IDS' + json.dumps(ids))\n"
    )
    out = stack.command("shell", "-c", script, timeout=600)
    line = next(x for x in out.splitlines() if x.startswith("IDS"))
    return json.loads(line[3:])


def confirmations(stack: FaultStack, order_ids: list[int]) -> Counter:
    """How many confirmation emails arrived per order of `order_ids`."""
    wanted = set(order_ids)
    counts: Counter = Counter()
    for message in stack.smtp.sink.received():
        found = CONFIRMATION_ID.search(message.get("Message-ID", ""))
        if found and int(found.group(1)) in wanted:
            counts[int(found.group(1))] += 1
    return counts


def wait_for_confirmations(stack: FaultStack, order_ids: list[int], timeout: float) -> Counter:
    deadline = time.monotonic() + timeout
    counts = confirmations(stack, order_ids)
    while len(counts) < len(order_ids) and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = confirmations(stack, order_ids)
    return counts


def _delivery_targets(
    result: ScenarioResult,
    order_ids: list[int],
    counts: Counter,
    seconds: float,
    *,
    max_twice: int = 0,
) -> None:
    result.facts["orders placed"] = len(order_ids)
    result.facts["distinct confirmations at the SMTP sink"] = len(counts)
    result.facts["all delivered after"] = f"{seconds:.1f} s"
    result.add(Target.equal("distinct confirmations delivered", len(counts), len(order_ids)))
    twice = sum(1 for n in counts.values() if n > 1)
    if max_twice:
        result.add(Target.at_most("confirmations delivered twice", twice, max_twice))
        thrice = sum(1 for n in counts.values() if n > 2)
        result.add(Target.equal("confirmations delivered three times or more", thrice, 0))
    else:
        result.add(Target.equal("confirmations delivered twice", twice, 0))


def _attempts(stack: FaultStack, order_ids: list[int]) -> dict[int, int]:
    import psycopg

    keys = [f"order-confirmation:{i}" for i in order_ids]
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT order_id, attempts FROM orders_emaildelivery WHERE idempotency_key = ANY(%s)",
            (keys,),
        ).fetchall()
    return dict(sorted(rows))


def worker_killed(stack: FaultStack, result: ScenarioResult) -> None:
    """1,000 order confirmations queued with the worker stopped; then the worker starts and is
    killed with `kill -9 <worker pid>` three times, 3 s apart, restarted at once each time (as
    systemd's Restart= would); its pool processes die with it (Celery sets PR_SET_PDEATHSIG).
    The tasks it had taken and not acknowledged come back after the broker's visibility
    timeout: 10 s here (CELERY_VISIBILITY_TIMEOUT; production's 3600 s would outlast the run,
    and the outbox resends what is still owed after 10 minutes)."""
    stack.worker.stop()
    started = time.monotonic()
    order_ids = place_orders(stack, EMAILS)
    result.facts["1,000 orders placed (confirmations queued) in"] = (
        f"{time.monotonic() - started:.1f} s"
    )
    env = {**stack.env, "CELERY_VISIBILITY_TIMEOUT": "10"}
    stack.worker.start(env)
    began = time.monotonic()
    delivered_at_kill = []
    for _ in range(KILLS):
        time.sleep(KILL_EVERY)
        delivered_at_kill.append(len(confirmations(stack, order_ids)))
        stack.worker.kill(group=False)
        stack.worker.start(env)
    result.facts["delivered when each kill came"] = delivered_at_kill
    counts = wait_for_confirmations(stack, order_ids, timeout=180)
    # The issue asks for none twice. No SMTP client can promise that when it is killed: after
    # the server has said 250 and before 'sent' is committed, the task can only send again
    # (at least once) or give the email up (at most once). Order confirmations take the first;
    # a second copy carries the first one's Message-ID, so mail clients show one. The target is
    # that floor: nothing lost, at most one second copy per pool process per kill.
    _delivery_targets(
        result, order_ids, counts, time.monotonic() - began, max_twice=KILLS * POOL_PROCESSES
    )
    twice = sorted(order_id for order_id, n in counts.items() if n > 1)
    if twice:
        result.facts["sent twice: order, send attempts recorded"] = _attempts(stack, twice)
        result.notes.append(
            "Each second copy carries the first one's Message-ID: the worker was killed after the "
            "SMTP server had the message and before the 'sent' commit, and the redelivered task "
            "sent it again (the at-least-once window, docs/tasks.md#order-emails)."
        )
    result.add(
        Target.true(
            "the kills hit while emails were flowing",
            all(0 < n < EMAILS for n in delivered_at_kill),
            "every kill between the first and the last email",
        )
    )
    stack.worker.stop()
    stack.worker.start(stack.env)


def broker_restarted(stack: FaultStack, result: ScenarioResult) -> None:
    """200 confirmations queued with the worker stopped; Redis (the broker) is then stopped
    (SIGTERM) and started again before the worker comes back. The stack's Redis persists to an
    append-only file as settings.py asks of the broker's Redis, so the queue survives; without
    persistence it would be lost, and the outbox (beat, every 10 minutes, for confirmations
    still owed after 10 minutes) would resend them within 20 minutes."""
    stack.worker.stop()
    order_ids = place_orders(stack, BROKER_EMAILS)
    stack.redis.stop()
    stack.redis.start()
    began = time.monotonic()
    stack.worker.start(stack.env)
    counts = wait_for_confirmations(stack, order_ids, timeout=120)
    _delivery_targets(result, order_ids, counts, time.monotonic() - began)
    result.facts["broker"] = "Redis with appendonly yes (appendfsync everysec), stopped and started"


def smtp_down(stack: FaultStack, result: ScenarioResult) -> None:
    """The SMTP server stopped (connections refused) while 50 orders are placed, for 45 s (the
    issue's 2 minutes, shortened to fit the run: the retry backoff doubles, so a longer outage
    only delays delivery further); then it returns. Every confirmation must arrive once, within
    the retry cap after SMTP's return: the task retries SMTP errors with jittered backoff, here
    capped at 20 s (EMAIL_RETRY_BACKOFF_MAX; production's 600 s would put an email up to 10
    minutes after the outage, and once a task has had 8 tries, its next wait can pass 240 s)."""
    stack.smtp.stop()
    down_at = time.monotonic()
    try:
        order_ids = place_orders(stack, SMTP_EMAILS)
        time.sleep(max(0.0, SMTP_DOWN_SECONDS - (time.monotonic() - down_at)))
    finally:
        stack.smtp.start()
    back_at = time.monotonic()
    result.facts["SMTP down for"] = f"{back_at - down_at:.0f} s"
    log("SMTP back; waiting for the retries")
    counts = wait_for_confirmations(stack, order_ids, timeout=SMTP_RETRY_BACKOFF_MAX + 100)
    _delivery_targets(result, order_ids, counts, time.monotonic() - back_at)
    result.facts["retry backoff cap (EMAIL_RETRY_BACKOFF_MAX)"] = f"{SMTP_RETRY_BACKOFF_MAX} s"
