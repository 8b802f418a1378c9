"""Order emails, sent by a Celery worker after the checkout commits (see services.place_order).

Each task only calls its service in storefront/orders/notifications.py, which makes it
idempotent: a retry, a redelivery after a worker died, or a duplicate finds the EmailDelivery row
sent and does nothing. SMTP and network errors (SMTPException is an OSError) retry with
exponential backoff capped at EMAIL_RETRY_BACKOFF_MAX (10 minutes), below the broker's visibility
timeout.
"""

from __future__ import annotations

from datetime import timedelta
from smtplib import SMTPException

from celery import Task, shared_task
from django.conf import settings

from storefront.orders import notifications, selectors

# About a day of tries at the 10-minute cap: an SMTP outage delays emails instead of losing them.
EMAIL_MAX_RETRIES = 150


class EmailTask(Task):
    def retry(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Run eagerly (no broker, or the tests) a retry would loop at once, inside the request
        # that placed the order: fail now instead; the delivery stays "failed" in the admin.
        if self.request.is_eager and kwargs.get("exc") is not None:
            raise kwargs["exc"]
        return super().retry(*args, **kwargs)


# What every email task shares: SMTP/network errors retry with jittered exponential backoff.
EMAIL_TASK_OPTIONS = {
    "base": EmailTask,
    "bind": True,
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": settings.EMAIL_RETRY_BACKOFF_MAX,
    "retry_jitter": True,
    "max_retries": EMAIL_MAX_RETRIES,
}


@shared_task(name="storefront.orders.tasks.send_order_confirmation", **EMAIL_TASK_OPTIONS)
def send_order_confirmation(self, order_id: int) -> str:
    return notifications.send_order_confirmation(order_id=order_id)


@shared_task(name="storefront.orders.tasks.send_low_stock_alert", **EMAIL_TASK_OPTIONS)
def send_low_stock_alert(self, order_id: int, product_ids: list[int]) -> str:
    return notifications.send_low_stock_alert(order_id=order_id, product_ids=product_ids)


@shared_task(name="storefront.orders.tasks.resend_owed_confirmations")
def resend_owed_confirmations() -> int:
    """Queue again the confirmations still owed (see selectors.confirmations_to_resend);
    idempotent, since sending is. Run by beat every 10 minutes. Returns how many were queued."""
    order_ids = selectors.confirmations_to_resend(
        older_than=timedelta(minutes=10),
        stuck_after=timedelta(
            seconds=settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] + 600
        ),
    )
    for order_id in order_ids:
        send_order_confirmation.delay(order_id)
    return len(order_ids)
