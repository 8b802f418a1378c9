"""Reads of orders: a customer only ever reads their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from storefront.accounts.models import User
from storefront.orders.models import EmailDelivery, Order, OrderLine

ORDER_LIST_FIELDS = ("id", "number", "status", "total", "item_count", "created_at", "user_id")
# Orders per history page; pages past the numbered ones are reached by keyset cursors.
ORDER_HISTORY_PAGE_SIZE = 20


def order_history_for(*, user: User) -> QuerySet[Order]:
    """The user's orders, newest first; ordered by (created_at, id) so it pages by keyset."""
    return Order.objects.filter(user=user).only(*ORDER_LIST_FIELDS).order_by("-created_at", "-id")


def order_detail_for(*, user: User, number: str) -> Order:
    """The user's order with its lines; raises Order.DoesNotExist for anyone else's."""
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    ).get(user=user, number=number)


def order_by_number(*, number: str) -> Order:
    """Any customer's order with its lines (staff work); raises Order.DoesNotExist."""
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))
    ).get(number=number)


ORDER_LINE_API_FIELDS = (
    "id",
    "order",
    "product_name",
    "product_sku",
    "unit_price",
    "quantity",
    "product__slug",
)


def orders_with_lines_for(*, user: User) -> QuerySet[Order]:
    """The user's orders with shipping details, lines and each line's product slug (API list).

    Lines join their product so the API can link to it without a query per line.
    """
    orders = order_history_for(user=user).only(
        *ORDER_LIST_FIELDS, "shipping_name", "shipping_address"
    )
    return orders.prefetch_related(
        Prefetch(
            "lines",
            queryset=OrderLine.objects.select_related("product")
            .only(*ORDER_LINE_API_FIELDS)
            .order_by("id"),
        )
    )


EXPORT_COLUMNS = (
    "number",
    "created_at",
    "status",
    "user__username",
    "user__email",
    "item_count",
    "total",
)


def order_export_rows(
    *, since: dt.date | None = None, until: dt.date | None = None
) -> Iterator[tuple]:
    """Every order (oldest first) as a tuple of EXPORT_COLUMNS, streamed from the database.

    `iterator()` uses a server-side cursor on PostgreSQL, so a million orders never sit in
    memory at once.
    """
    qs = Order.objects.order_by("created_at", "id")
    if since:
        qs = qs.filter(created_at__date__gte=since)
    if until:
        qs = qs.filter(created_at__date__lte=until)
    return qs.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000)


# --- the order emails (storefront/orders/notifications.py) ----------------------------------------


def order_for_confirmation(*, order_id: int) -> Order:
    """The order with its customer and lines (the confirmation email); raises
    Order.DoesNotExist."""
    return Order.objects.select_related("user").prefetch_related("lines").get(pk=order_id)


def order_number(*, order_id: int) -> str:
    """The order's number; raises Order.DoesNotExist."""
    return Order.objects.values_list("number", flat=True).get(pk=order_id)


def staff_alert_recipients() -> list[str]:
    """STOREFRONT_STAFF_ALERT_EMAILS, or else every active staff user with an email."""
    if settings.STOREFRONT_STAFF_ALERT_EMAILS:
        return list(dict.fromkeys(settings.STOREFRONT_STAFF_ALERT_EMAILS))
    return list(
        User.objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )


def email_delivery_status(*, delivery_id: int) -> str:
    """An EmailDelivery's status; raises EmailDelivery.DoesNotExist."""
    return EmailDelivery.objects.values_list("status", flat=True).get(pk=delivery_id)


def confirmations_to_resend(*, older_than: dt.timedelta, stuck_after: dt.timedelta) -> list[int]:
    """Order ids whose confirmation is still owed: pending or failed for `older_than` (the
    queued task was lost, e.g. the broker was down at commit, or it gave up retrying), or
    "sending" for `stuck_after` (its worker died and the broker lost the redelivery).
    Only orders placed in the last two days: older ones are left to a person (admin)."""
    now = timezone.now()
    pending = [EmailDelivery.Status.PENDING, EmailDelivery.Status.FAILED]
    owed = Q(status__in=pending, updated_at__lt=now - older_than) | Q(
        status=EmailDelivery.Status.SENDING, updated_at__lt=now - stuck_after
    )
    return list(
        EmailDelivery.objects.filter(
            owed,
            kind=EmailDelivery.Kind.ORDER_CONFIRMATION,
            created_at__gte=now - dt.timedelta(days=2),
            order__isnull=False,
        )
        .order_by("created_at")
        .values_list("order_id", flat=True)[:1000]
    )


def confirmation_emails_owed_count() -> int:
    """Order confirmations not sent yet (pending, sending or failed): the outbox, for /metrics."""
    owed = [EmailDelivery.Status.PENDING, EmailDelivery.Status.SENDING, EmailDelivery.Status.FAILED]
    return EmailDelivery.objects.filter(
        kind=EmailDelivery.Kind.ORDER_CONFIRMATION, status__in=owed
    ).count()
