"""Cache invalidation for orders (a customer's dashboard changes with each of their orders),
and the saved cart restored at login."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from storefront import caching
from storefront.accounts.models import User
from storefront.orders.cart import Cart
from storefront.orders.models import Order


@receiver([post_save, post_delete], sender=Order, dispatch_uid="orders-user-cache")
def order_changed(sender: type, instance: Order, **kwargs: Any) -> None:
    user_id = instance.user_id
    transaction.on_commit(lambda: caching.bump_user(user_id), robust=True)


@receiver(user_logged_in, dispatch_uid="orders-merge-saved-cart")
def merge_saved_cart(sender: type, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    """Every login (the login page, sign-up, the admin): the anonymous cart joins the saved one.

    login() has kept the session's data while cycling its key, so the anonymous cart is still
    there; the merged cart replaces it.
    """
    session = getattr(request, "session", None)
    if session is None:
        return
    for note in Cart(session, user=user).merge_saved():
        # fail_silently: a login without the messages middleware (a test client's
        # force_login) still restores the cart.
        messages.warning(request, note, fail_silently=True)
