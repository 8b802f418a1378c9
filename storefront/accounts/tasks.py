"""Accounts emails, sent by a Celery worker after the request (see notifications.py).

Same conventions as storefront/orders/tasks.py: the task only calls its service, which is
idempotent (a retry or a redelivery finds the delivery sent and does nothing), and SMTP or
network errors retry with jittered exponential backoff.
"""

from __future__ import annotations

from celery import shared_task

from storefront.accounts import notifications
from storefront.orders.tasks import EMAIL_TASK_OPTIONS


@shared_task(name="storefront.accounts.tasks.send_password_reset_email", **EMAIL_TASK_OPTIONS)
def send_password_reset_email(self, key: str, to: str, subject: str, body: str, html: str) -> str:
    return notifications.send_password_reset(key=key, to=to, subject=subject, body=body, html=html)
