"""Password-reset emails, sent once by a Celery worker (see storefront/accounts/tasks.py).

The reset form renders the message in the request (PasswordResetView passes the host and port
the visitor used, and whether the request was HTTPS, so the link goes back to the same place)
and hands it to the task. The task sends it through the shop's email ledger
(storefront/orders/notifications.py): an EmailDelivery row per message, keyed
"password-reset:<user id>:<random>", so a retried or redelivered task sends it once, and a
failure stays visible in the admin. The row keeps the recipient and subject, never the link.
"""

from __future__ import annotations

import uuid

from storefront.orders import notifications
from storefront.orders.models import EmailDelivery


def password_reset_key(user_id: int) -> str:
    """A new idempotency key for one reset email (each request for a reset is its own email)."""
    return f"password-reset:{user_id}:{uuid.uuid4().hex}"


def send_password_reset(*, key: str, to: str, subject: str, body: str, html: str) -> str:
    """Send one rendered reset email under `key`; once. Returns the final delivery status."""
    return notifications.deliver_once(
        key=key,
        kind=EmailDelivery.Kind.PASSWORD_RESET,
        build=lambda: notifications.keyed_message(
            key=key, subject=subject, to=[to], body=body, html=html
        ),
    )
