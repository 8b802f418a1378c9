"""Writes of the accounts app."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import knox_settings

from storefront.accounts.models import User


@transaction.atomic
def user_sign_up(*, username: str, email: str, password: str, full_name: str = "") -> User:
    user = User(username=username, email=email.strip().lower(), full_name=full_name)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def user_update_profile(*, user: User, **fields: object) -> User:
    for name, value in fields.items():
        setattr(user, name, value)
    user.full_clean()
    user.save(update_fields=[*fields])
    return user


@transaction.atomic
def api_token_create(*, user: User) -> tuple[AuthToken, str]:
    """A new API token for `user`: the stored row (only a hash of the token) and the token
    itself, which is shown once. It expires after REST_KNOX["TOKEN_TTL"].

    The user's expired tokens are deleted here, not on every request as knox would
    (storefront/accounts/authentication.py).
    """
    AuthToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
    return AuthToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)


@transaction.atomic
def api_token_revoke(*, token: AuthToken) -> None:
    """The token stops working at once; the user's other tokens and sessions are untouched."""
    token.delete()
