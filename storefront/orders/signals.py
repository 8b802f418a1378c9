"""Cache invalidation for orders: a customer's dashboard changes with each of their orders."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from storefront import caching
from storefront.orders.models import Order


@receiver([post_save, post_delete], sender=Order, dispatch_uid="orders-user-cache")
def order_changed(sender: type, instance: Order, **kwargs: Any) -> None:
    user_id = instance.user_id
    transaction.on_commit(lambda: caching.bump_user(user_id), robust=True)
