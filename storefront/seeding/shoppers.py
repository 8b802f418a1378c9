"""Seeded shoppers (shopper00001, ...): names and addresses drawn from the vocabulary."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from django.contrib.auth.hashers import make_password
from django.db.models import QuerySet

from storefront.accounts import services as account_services
from storefront.accounts.models import User
from storefront.bulk_load import TableLoader
from storefront.orders.shipping import profile_shipping_address
from storefront.seeding.clock import HISTORY_DAYS, Clock
from storefront.seeding.vocabulary import vocabulary

# Every seeded shopper shares this password, so load tests can log in as many distinct
# customers.
SHOPPER_PASSWORD = "shopper-2026"
SHOPPER_PREFIX = "shopper"
SHOPPER_EMAIL_DOMAIN = "example.com"
COUNTRY = "United Kingdom"
# The letters of a postcode's inward part.
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def seeded_shoppers() -> QuerySet[User]:
    return User.objects.filter(
        username__regex=rf"^{SHOPPER_PREFIX}[0-9]{{5,}}$",
        email__endswith=f"@{SHOPPER_EMAIL_DOMAIN}",
    )


@dataclass(frozen=True)
class Shopper:
    """What an order copies from its customer."""

    id: int
    shipping_name: str
    shipping_address: str

    @classmethod
    def of(cls, user: User) -> Shopper:
        return cls(user.id, user.display_name, profile_shipping_address(user=user))


def load_shoppers(
    *, loader: TableLoader, rng: random.Random, count: int, clock: Clock
) -> tuple[int, list[Shopper]]:
    """Write `count` shoppers after the existing users; the rows written and the shoppers."""
    first_id = account_services.users_lock_for_bulk_load()
    shoppers: list[Shopper] = []
    written = account_services.bulk_load_users(
        loader=loader,
        rows=_shopper_rows(
            loader=loader, rng=rng, count=count, clock=clock, first_id=first_id, into=shoppers
        ),
    )
    return written, shoppers


def _shopper_rows(
    *,
    loader: TableLoader,
    rng: random.Random,
    count: int,
    clock: Clock,
    first_id: int,
    into: list[Shopper],
) -> Iterator[tuple]:
    """Rows in USER_BULK_COLUMNS order; each shopper is appended to `into` as it is made."""
    words = vocabulary()
    first_names, last_names = words.first_names, words.last_names
    cities, streets = words.cities, words.streets
    # One hash for all: hashing is deliberately slow, and 10,000 would take an hour.
    password = make_password(SHOPPER_PASSWORD)
    width = max(5, len(str(count)))
    for index in range(count):
        user_id = first_id + index
        username = f"{SHOPPER_PREFIX}{index + 1:0{width}d}"
        first, last = rng.choice(first_names), rng.choice(last_names)
        city, district = rng.choice(cities)
        postcode = (
            f"{district} {rng.randrange(1, 10)}"
            f"{rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}"
        )
        street = f"{rng.randrange(1, 200)} {rng.choice(streets)}"
        joined = clock.midnight - int(86_400 * (HISTORY_DAYS + rng.random() * HISTORY_DAYS))
        full_name = f"{first} {last}"
        # The address lines as profile_shipping_address() writes them for a real checkout.
        address = "\n".join((street, city, postcode, COUNTRY))
        into.append(Shopper(user_id, full_name, address))
        yield (
            user_id,
            password,
            None,
            False,
            username,
            first,
            last,
            f"{username}@{SHOPPER_EMAIL_DOMAIN}",
            False,
            True,
            loader.format_timestamp(joined),
            full_name,
            f"+44 7700 900{rng.randrange(1000):03d}",
            street,
            city,
            postcode,
            COUNTRY,
            rng.random() < 0.3,
        )
