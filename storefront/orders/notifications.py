"""Order emails: the customer's confirmation and the staff's low-stock alert, each sent once.

`deliver_once` and `keyed_message` are the shop's way of sending any email once; the accounts
app sends its password-reset emails through them too (storefront/accounts/notifications.py).

Each email has an EmailDelivery row with a unique idempotency key ("order-confirmation:<order
id>", "low-stock:<order id>"). Sending it:

1. get-or-create the row (the unique key makes a concurrent duplicate find the same row);
2. count the attempt and mark it "sending" in its own committed statement, unless the row is
   already sent or skipped (then a redelivered or duplicated task stops here);
3. in one transaction: lock the row (SELECT ... FOR UPDATE), check again that it is not done
   (a duplicate that waited for the lock stops here), send through SMTP, mark it "sent".

The confirmation's row is created by the checkout itself, in its transaction (an outbox): if
the task is lost (broker down at commit, a Redis restart dropping the queue), the periodic
`resend_owed_confirmations` task finds the row still pending and queues the email again.

A worker that dies before or during the SMTP conversation leaves the row "sending" (its lock dies
with its database connection); Celery redelivers the task (acks_late, reject on worker lost)
and the next attempt sends it. The remaining at-least-once window: the SMTP server accepted the
message (250 after DATA) but the worker died, or the database failed, before the "sent" commit
landed. The redelivered task then sends a second copy. No protocol can close that window
between two systems that do not share a transaction; it is as short as one COMMIT, and both
copies carry the same Message-ID (derived from the key), so mail clients and MTAs that
deduplicate on it show one.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from storefront.catalog.selectors import low_stock_alert_products
from storefront.orders.models import EmailDelivery, Order
from storefront.orders.selectors import (
    email_delivery_status,
    order_for_confirmation,
    order_number,
    staff_alert_recipients,
)

Status = EmailDelivery.Status
Kind = EmailDelivery.Kind


def order_confirmation_key(order_id: int) -> str:
    return f"order-confirmation:{order_id}"


def low_stock_key(order_id: int) -> str:
    return f"low-stock:{order_id}"


def record_pending_confirmation(*, order: Order) -> None:
    """The outbox row of an order's confirmation, written in the checkout's transaction."""
    EmailDelivery.objects.create(
        idempotency_key=order_confirmation_key(order.id),
        kind=Kind.ORDER_CONFIRMATION,
        order=order,
    )


def send_order_confirmation(*, order_id: int) -> str:
    """Email the customer their order (lines, total, link); once. Returns the final status."""
    return deliver_once(
        key=order_confirmation_key(order_id),
        kind=Kind.ORDER_CONFIRMATION,
        order_id=order_id,
        build=lambda: _order_confirmation_message(order_id=order_id),
    )


def send_low_stock_alert(*, order_id: int, product_ids: list[int]) -> str:
    """Email staff the products this order took to or below the low-stock threshold; once.

    `product_ids` were decided by the checkout under its row locks (see place_order): products
    that crossed the threshold with this order, so a product already low is not re-announced on
    every sale. No staff recipients: the delivery is recorded as skipped.
    """
    return deliver_once(
        key=low_stock_key(order_id),
        kind=Kind.LOW_STOCK,
        order_id=order_id,
        build=lambda: _low_stock_message(order_id=order_id, product_ids=product_ids),
    )


def deliver_once(
    *,
    key: str,
    kind: str,
    build: Callable[[], EmailMultiAlternatives | None],
    order_id: int | None = None,
) -> str:
    """Send the message `build` returns under the EmailDelivery row `key`, unless that row is
    already sent or skipped (steps 1-3 above); `build` returning None records it as skipped.
    Returns the final status; SMTP errors propagate (the task retries) after recording them."""
    delivery, _ = EmailDelivery.objects.get_or_create(
        idempotency_key=key, defaults={"kind": kind, "order_id": order_id}
    )
    # Committed before sending, so attempts count the tries of workers that died mid-send too.
    claimed = (
        EmailDelivery.objects.filter(pk=delivery.pk)
        .exclude(status__in=EmailDelivery.DONE_STATUSES)
        .update(status=Status.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now())
    )
    if not claimed:
        return email_delivery_status(delivery_id=delivery.pk)
    # Opened here and closed (SMTP QUIT) only after the "sent" commit: the server's round trip for
    # QUIT stays out of the at-least-once window below (make faults found second copies when a
    # worker was killed during it).
    connection = get_connection()
    try:
        # The row stays locked while SMTP talks, so a concurrent duplicate waits, then sees "sent".
        with transaction.atomic():
            delivery = EmailDelivery.objects.select_for_update().get(pk=delivery.pk)
            if delivery.status in EmailDelivery.DONE_STATUSES:
                return delivery.status
            message = build()
            if message is None:
                delivery.status = Status.SKIPPED
                delivery.last_error = ""
                delivery.save(update_fields=["status", "last_error", "updated_at"])
                return delivery.status
            delivery.recipients = list(message.to)
            delivery.subject = message.subject
            connection.open()
            message.connection = connection
            message.send()
            # At-least-once window: the message is accepted; dying before this commit resends it.
            delivery.status = Status.SENT
            delivery.sent_at = timezone.now()
            delivery.last_error = ""
            delivery.save(
                update_fields=[
                    "recipients", "subject", "status", "sent_at", "last_error", "updated_at"
                ]
            )  # fmt: skip
            return delivery.status
    except Exception as exc:
        # Visible in the admin while the task retries (SMTP/network errors) or after it gave up.
        EmailDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
            status=Status.FAILED, last_error=repr(exc)[:2000], updated_at=timezone.now()
        )
        raise
    finally:
        connection.close()


def _order_confirmation_message(*, order_id: int) -> EmailMultiAlternatives | None:
    order = order_for_confirmation(order_id=order_id)
    if not order.user.email:
        return None
    context = {
        "order": order,
        "lines": list(order.lines.all()),
        "customer_name": order.shipping_name or order.user.display_name,
        "order_url": settings.STOREFRONT_SITE_URL + order.get_absolute_url(),
    }
    return _message(
        key=order_confirmation_key(order_id),
        subject=f"Your Storefront order {order.number}",
        to=[order.user.email],
        template="orders/email/order_confirmation",
        context=context,
    )


def _low_stock_message(*, order_id: int, product_ids: list[int]) -> EmailMultiAlternatives | None:
    recipients = staff_alert_recipients()
    if not recipients or not product_ids:
        return None
    number = order_number(order_id=order_id)
    products = [
        {
            "name": p.name,
            "sku": p.sku,
            "stock": p.stock,
            "admin_url": settings.STOREFRONT_SITE_URL
            + reverse("admin:catalog_product_change", args=[p.pk]),
        }
        for p in low_stock_alert_products(ids=product_ids)
    ]
    if not products:
        return None
    names = ", ".join(p["name"] for p in products[:3]) + ("…" if len(products) > 3 else "")
    return _message(
        key=low_stock_key(order_id),
        subject=f"Low stock after order {number}: {names}",
        to=recipients,
        template="orders/email/low_stock_alert",
        context={
            "order_number": number,
            "products": products,
            "threshold": settings.STOREFRONT_LOW_STOCK_THRESHOLD,
        },
    )


def _message(
    *, key: str, subject: str, to: list[str], template: str, context: dict[str, object]
) -> EmailMultiAlternatives:
    return keyed_message(
        key=key,
        subject=subject,
        to=to,
        body=render_to_string(f"{template}.txt", context),
        html=render_to_string(f"{template}.html", context),
    )


def keyed_message(
    *, key: str, subject: str, to: list[str], body: str, html: str = ""
) -> EmailMultiAlternatives:
    """A text (+ HTML) email whose Message-ID is derived from its delivery's idempotency key."""
    host = urlsplit(settings.STOREFRONT_SITE_URL).hostname or "storefront"
    message = EmailMultiAlternatives(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        # The same Message-ID on every attempt: a copy sent in the at-least-once window is
        # recognisably the same message.
        headers={"Message-ID": f"<{key.replace(':', '.')}@{host}>"},
    )
    if html:
        message.attach_alternative(html, "text/html")
    return message
