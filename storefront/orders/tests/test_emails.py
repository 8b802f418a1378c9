"""Order emails through a real SMTP server: sent once, also when the worker dies mid-send.

The quick tests run the tasks eagerly (the test settings) right after the checkout's commit; the
`stack` ones send them through Redis to a real `celery worker` subprocess.
"""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.db import transaction

from harness.smtp import SmtpSink
from storefront.orders.models import EmailDelivery
from storefront.orders.notifications import low_stock_key, order_confirmation_key
from storefront.orders.services import CheckoutError, OrderItem, place_order
from storefront.orders.tasks import send_low_stock_alert, send_order_confirmation
from tests.celery_worker import running_worker
from tests.factories import ProductFactory, StaffFactory, UserFactory

VISIBILITY_TIMEOUT = 3  # seconds, for the crash test's worker: Redis redelivers after it


@pytest.fixture(autouse=True)
def _email_settings(settings) -> None:
    settings.STOREFRONT_SITE_URL = "https://shop.example"
    settings.STOREFRONT_LOW_STOCK_THRESHOLD = 5
    settings.STOREFRONT_STAFF_ALERT_EMAILS = []


def _for_key(messages: list[EmailMessage], key: str) -> list[EmailMessage]:
    """The messages of one delivery: its Message-ID is derived from the idempotency key."""
    return [m for m in messages if m["Message-ID"].startswith(f"<{key.replace(':', '.')}@")]


def _text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def _html(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def _wait_for_status(key: str, status: str, timeout: float = 20.0) -> EmailDelivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = EmailDelivery.objects.filter(idempotency_key=key).first()
        if delivery is not None and delivery.status == status:
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"{key} not {status}: {EmailDelivery.objects.filter(idempotency_key=key)}")


# Eager: the task runs in the test process when the checkout's on_commit callbacks run.


@pytest.mark.django_db
def test_an_order_sends_exactly_one_confirmation(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks
) -> None:
    user = UserFactory(email="ada@example.com", full_name="Ada Lovelace")
    lamp = ProductFactory(name="Desk Lamp", sku="L-1", price=Decimal("19.99"), stock=50)
    mug = ProductFactory(name="Mug", sku="M-1", price=Decimal("7.50"), stock=50)

    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(user=user, items=[OrderItem(lamp.id, 2), OrderItem(mug.id, 1)])

    [message] = smtp_sink.received()
    assert message["Subject"] == f"Your Storefront order {order.number}"
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Storefront <shop@storefront.test>"
    text, html = _text(message), _html(message)
    assert "Hello Ada Lovelace," in text
    assert "2 × Desk Lamp (L-1) at $19.99 = $39.98" in text
    assert "1 × Mug (M-1) at $7.50 = $7.50" in text
    assert "Total: $47.48" in text
    order_url = f"https://shop.example/orders/{order.number}/"
    assert f"View your order: {order_url}" in text
    assert f'<a href="{order_url}">' in html and "<strong>$47.48</strong>" in html

    delivery = EmailDelivery.objects.get(idempotency_key=order_confirmation_key(order.id))
    assert (delivery.kind, delivery.status, delivery.attempts) == ("order_confirmation", "sent", 1)
    assert delivery.recipients == ["ada@example.com"] and delivery.sent_at is not None
    assert delivery.order == order
    # Stock stayed high: no staff alert was even enqueued.
    assert not EmailDelivery.objects.filter(kind=EmailDelivery.Kind.LOW_STOCK).exists()

    # A redelivered or duplicate task finds the delivery sent and sends nothing.
    send_order_confirmation.delay(order.id)
    send_order_confirmation.delay(order.id)
    assert len(smtp_sink.received()) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 1)


@pytest.mark.django_db
def test_smtp_quits_only_after_sent_is_recorded(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    # A worker killed between the server's 250 and the "sent" commit sends a second copy when
    # the task is redelivered; QUIT's round trip is kept out of that window (make faults).
    from django.core.mail.backends.smtp import EmailBackend

    statuses_at_quit: list[list[str]] = []
    original_close = EmailBackend.close

    def close(self: EmailBackend) -> None:
        if self.connection is not None:  # an open SMTP session: this is its QUIT
            statuses_at_quit.append(list(EmailDelivery.objects.values_list("status", flat=True)))
        original_close(self)

    monkeypatch.setattr(EmailBackend, "close", close)
    user = UserFactory(email="ada@example.com")
    lamp = ProductFactory(stock=50)
    with django_capture_on_commit_callbacks(execute=True):
        place_order(user=user, items=[OrderItem(lamp.id, 1)])

    assert statuses_at_quit == [["sent"]]
    assert len(smtp_sink.received()) == 1


@pytest.mark.django_db
def test_a_product_crossing_the_threshold_sends_one_staff_alert(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks
) -> None:
    StaffFactory(email="boss@storefront.test")
    StaffFactory(email="gone@storefront.test", is_active=False)
    UserFactory(email="customer2@example.com")  # not staff
    user = UserFactory(email="ada@example.com")
    crossing = ProductFactory(name="Teapot", sku="T-1", stock=7)  # 7 -> 5: at the threshold
    already_low = ProductFactory(name="Vase", sku="V-1", stock=4)  # 4 -> 3: was low already
    plenty = ProductFactory(name="Chair", sku="C-1", stock=50)

    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(
            user=user,
            items=[
                OrderItem(crossing.id, 2),
                OrderItem(already_low.id, 1),
                OrderItem(plenty.id, 1),
            ],
        )

    assert len(smtp_sink.received()) == 2
    [alert] = _for_key(smtp_sink.received(), low_stock_key(order.id))
    assert alert["To"] == "boss@storefront.test"
    assert alert["Subject"] == f"Low stock after order {order.number}: Teapot"
    text = _text(alert)
    assert "- Teapot (T-1): 5 left" in text
    assert f"https://shop.example/admin/catalog/product/{crossing.id}/change/" in text
    assert "Vase" not in text and "Chair" not in text
    assert "Teapot" in _html(alert) and "Vase" not in _html(alert)
    delivery = EmailDelivery.objects.get(idempotency_key=low_stock_key(order.id))
    assert (delivery.status, delivery.recipients) == ("sent", ["boss@storefront.test"])

    send_low_stock_alert.delay(order.id, [crossing.id])  # a redelivery: nothing more
    assert len(smtp_sink.received()) == 2

    # The next sale of the now-low teapot confirms the order but alerts nobody again.
    with django_capture_on_commit_callbacks(execute=True):
        second = place_order(user=user, items=[OrderItem(crossing.id, 1)])
    assert len(smtp_sink.received()) == 3
    assert not EmailDelivery.objects.filter(idempotency_key=low_stock_key(second.id)).exists()


@pytest.mark.django_db
def test_the_alert_goes_to_the_configured_addresses(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, settings
) -> None:
    settings.STOREFRONT_STAFF_ALERT_EMAILS = ["ops@storefront.test", "buyer@storefront.test"]
    StaffFactory(email="boss@storefront.test")
    product = ProductFactory(stock=6)

    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(user=UserFactory(), items=[OrderItem(product.id, 6)])

    [alert] = _for_key(smtp_sink.received(), low_stock_key(order.id))
    assert alert["To"] == "ops@storefront.test, buyer@storefront.test"
    assert "0 left" in _text(alert)


@pytest.mark.django_db
def test_no_staff_recipients_records_the_alert_as_skipped(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks
) -> None:
    product = ProductFactory(stock=6)

    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(user=UserFactory(), items=[OrderItem(product.id, 2)])

    assert len(smtp_sink.received()) == 1  # the confirmation only
    delivery = EmailDelivery.objects.get(idempotency_key=low_stock_key(order.id))
    assert (delivery.status, delivery.sent_at, delivery.last_error) == ("skipped", None, "")


@pytest.mark.django_db
def test_nothing_is_sent_when_the_checkout_fails_or_rolls_back(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks
) -> None:
    StaffFactory()
    user = UserFactory()
    product = ProductFactory(stock=6)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(CheckoutError):
            place_order(user=user, items=[OrderItem(product.id, 7)])  # more than in stock
        # Placed, then rolled back by the caller's transaction: its on_commit work goes too.
        with pytest.raises(RuntimeError), transaction.atomic():
            place_order(user=user, items=[OrderItem(product.id, 2)])
            raise RuntimeError("payment declined")

    assert callbacks == []
    assert smtp_sink.received() == []
    assert not EmailDelivery.objects.exists()
    product.refresh_from_db()
    assert product.stock == 6


@pytest.mark.django_db
def test_smtp_down_keeps_the_order_and_records_the_failure(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, settings
) -> None:
    port = smtp_sink.port
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = place_order(user=UserFactory(), items=[OrderItem(ProductFactory().id, 1)])
    settings.EMAIL_PORT = port + 1 if port < 65535 else port - 1  # nobody listens there
    failures = []
    for callback in callbacks:
        # After a real commit Django logs these errors (robust=True): the order stays placed.
        try:
            callback()
        except OSError as exc:
            failures.append(exc)
    assert [type(exc) for exc in failures] == [ConnectionRefusedError]

    delivery = EmailDelivery.objects.get(idempotency_key=order_confirmation_key(order.id))
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "Connection refused" in delivery.last_error or "Errno" in delivery.last_error

    # The SMTP server is back: the task's next try sends it.
    settings.EMAIL_PORT = port
    send_order_confirmation.delay(order.id)
    assert len(smtp_sink.received()) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)


# A real worker, through the Redis broker.


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_confirmation_once(celery_worker, smtp_sink: SmtpSink) -> None:
    user = UserFactory(email="grace@example.com")
    product = ProductFactory(name="Compiler", stock=50)

    order = place_order(user=user, items=[OrderItem(product.id, 1)])

    [message] = smtp_sink.wait_for(1)
    assert message["Subject"] == f"Your Storefront order {order.number}"
    assert message["To"] == "grace@example.com"
    delivery = _wait_for_status(order_confirmation_key(order.id), "sent")
    assert delivery.attempts == 1
    assert "storefront.orders.tasks.send_order_confirmation" in celery_worker.log()
    time.sleep(1)
    assert len(smtp_sink.received()) == 1


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_delivers_exactly_one_email_after_restart(
    require_postgres, require_redis, smtp_sink: SmtpSink, settings, tmp_path: Path
) -> None:
    user = UserFactory(email="edsger@example.com")
    product = ProductFactory(name="Semaphore", stock=50)
    with running_worker(
        tmp_path / "celery-worker.log",
        email_url=smtp_sink.url,
        media_root=settings.MEDIA_ROOT,
        extra_env={"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)},
    ) as worker:
        smtp_sink.hold()
        order = place_order(user=user, items=[OrderItem(product.id, 1)])
        key = order_confirmation_key(order.id)

        # The worker has sent the message data and waits for the server's answer.
        assert smtp_sink.wait_until_holding(20), worker.log()
        delivery = EmailDelivery.objects.get(idempotency_key=key)
        assert (delivery.status, delivery.attempts) == ("sending", 1)

        worker.stop(signal.SIGKILL)  # the main process and its pool child, mid-SMTP
        time.sleep(0.3)  # let the sink see the connection close before it lets DATA go on
        smtp_sink.release()
        assert smtp_sink.received() == [] and smtp_sink.dropped == 1

        # Redis hands the unacknowledged task out again once its visibility timeout passed; a
        # starting worker sweeps for such tasks at once (later sweeps are 100 s apart).
        time.sleep(VISIBILITY_TIMEOUT)
        worker.start()
        messages = smtp_sink.wait_for(1, timeout=15)
        assert len(_for_key(messages, key)) == 1, worker.log()
        delivery = _wait_for_status(key, "sent")

        # Long enough for any duplicate (a second redelivery) to have been sent.
        time.sleep(VISIBILITY_TIMEOUT + 2)
    assert len(_for_key(smtp_sink.received(), key)) == 1
    assert len(smtp_sink.received()) == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts >= 2
    assert delivery.recipients == ["edsger@example.com"]


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_pool_process_killed_mid_send_is_requeued_at_once(
    celery_worker, smtp_sink: SmtpSink
) -> None:
    """Only the pool child dies: the worker's main process requeues the task at once.

    That is task_reject_on_worker_lost: no visibility timeout to wait for.
    """
    smtp_sink.hold()
    order = place_order(user=UserFactory(), items=[OrderItem(ProductFactory(stock=50).id, 1)])
    key = order_confirmation_key(order.id)
    assert smtp_sink.wait_until_holding(20), celery_worker.log()
    assert celery_worker.proc is not None
    main = celery_worker.proc.pid
    [child] = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    os.kill(int(child), signal.SIGKILL)
    time.sleep(0.5)  # the sink drops the killed child's message; the task is back in the queue
    assert smtp_sink.dropped == 1
    smtp_sink.release()

    messages = smtp_sink.wait_for(1, timeout=15)
    assert len(_for_key(messages, key)) == 1, celery_worker.log()
    delivery = _wait_for_status(key, "sent")
    time.sleep(2)
    assert len(smtp_sink.received()) == 1
    assert delivery.attempts >= 2 and smtp_sink.dropped >= 1
    assert "WorkerLostError" in celery_worker.log(20000)


# The outbox: the checkout writes the confirmation's row; a lost task is queued again.


@pytest.mark.django_db
def test_a_confirmation_lost_at_commit_is_sent_by_the_resend_task(
    smtp_sink: SmtpSink, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    from datetime import timedelta

    from django.utils import timezone
    from kombu.exceptions import OperationalError

    from storefront.orders import tasks

    user = UserFactory(email="grace@example.com")
    lamp = ProductFactory(stock=50)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    monkeypatch.setattr(tasks.send_order_confirmation, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(user=user, items=[OrderItem(lamp.id, 1)])
    monkeypatch.undo()

    # The order stands, the email is owed.
    delivery = EmailDelivery.objects.get(idempotency_key=order_confirmation_key(order.id))
    assert delivery.status == "pending" and smtp_sink.received() == []
    # Too recent: a task may still be on its way.
    assert tasks.resend_owed_confirmations.delay().get() == 0

    EmailDelivery.objects.filter(pk=delivery.pk).update(
        updated_at=timezone.now() - timedelta(minutes=11)
    )
    assert tasks.resend_owed_confirmations.delay().get() == 1
    [message] = smtp_sink.received()
    assert message["To"] == "grace@example.com"
    delivery.refresh_from_db()
    assert delivery.status == "sent"
    # Nothing is owed any more: a second sweep sends nothing.
    assert tasks.resend_owed_confirmations.delay().get() == 0
    assert len(smtp_sink.received()) == 1


@pytest.mark.django_db
def test_the_resend_task_leaves_sent_recent_and_old_deliveries_alone(smtp_sink: SmtpSink) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from storefront.orders import tasks
    from tests.factories import OrderFactory

    now = timezone.now()
    sent, old = OrderFactory(), OrderFactory()
    EmailDelivery.objects.create(
        idempotency_key=order_confirmation_key(sent.id), kind="order_confirmation", order=sent,
        status="sent",
    )  # fmt: skip
    stale = EmailDelivery.objects.create(
        idempotency_key=order_confirmation_key(old.id), kind="order_confirmation", order=old
    )
    EmailDelivery.objects.filter(pk=stale.pk).update(
        created_at=now - timedelta(days=3), updated_at=now - timedelta(days=3)
    )
    EmailDelivery.objects.update(updated_at=now - timedelta(hours=1))
    # Seeded or historical orders without an outbox row are never emailed either.
    OrderFactory()

    assert tasks.resend_owed_confirmations.delay().get() == 0
    assert smtp_sink.received() == []
