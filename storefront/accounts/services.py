"""Writes of the accounts app."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import knox_settings

from storefront.accounts.models import User
from storefront.accounts.roles import staff_role
from storefront.bulk_load import TableLoader

# The columns of bulk-loaded rows, in order (ids included; timestamps as the loader formats them).
USER_BULK_COLUMNS = (
    "id",
    "password",
    "last_login",
    "is_superuser",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_active",
    "date_joined",
    "full_name",
    "phone",
    "address_line",
    "city",
    "postal_code",
    "country",
    "marketing_opt_in",
)


@transaction.atomic
def user_sign_up(*, username: str, email: str, password: str, full_name: str = "") -> User:
    user = User(username=username, email=email.strip().lower(), full_name=full_name)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str,
    superuser: bool = False,
    roles: Iterable[str] = (),
    **profile: object,
) -> User:
    """A user with a hashed password and the `profile` fields (a superuser is staff too), in
    the staff role groups named by `roles`."""
    create = User.objects.create_superuser if superuser else User.objects.create_user
    user = create(username, password=password, **profile)
    if groups := [staff_role(name) for name in roles]:
        user.groups.add(*groups)
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


def users_lock_for_bulk_load() -> int:
    """Hold off sign-ups until the caller's transaction ends (PostgreSQL), and return the first
    id after the existing users': a bulk load assigns ids from there, and its loader moves the
    sequence on before the lock goes."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"LOCK TABLE {connection.ops.quote_name(User._meta.db_table)} "
                "IN SHARE ROW EXCLUSIVE MODE"
            )
    return (User.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1


def bulk_load_users(*, loader: TableLoader, rows: Iterable[tuple]) -> int:
    """Write generated users (USER_BULK_COLUMNS, ids from users_lock_for_bulk_load) in the
    caller's transaction, without model validation or signals; the number written."""
    return loader.load(model=User, columns=USER_BULK_COLUMNS, rows=rows)


@transaction.atomic
def users_delete(*, users: QuerySet[User]) -> None:
    """Delete `users` and what cascades from them (a user with orders is protected)."""
    users.delete()
