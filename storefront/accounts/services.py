"""Writes of the accounts app."""

from __future__ import annotations

from django.db import transaction

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
