"""`storefront seed`: fill the shop with deterministic demo or scale data."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storefront import seeding


class Command(BaseCommand):
    help = (
        "Fill the shop with generated categories, products, shoppers and a year of orders. "
        "The data is deterministic: the same --seed on the same day gives the same rows "
        "(dates count back from today's midnight, so another day shifts them). Also creates "
        f"the demo customer {seeding.DEMO_CUSTOMER[0]!r} and the demo staff user "
        f"{seeding.DEMO_STAFF[0]!r} when they are missing. Refuses to touch a shop that "
        "already has products, categories, orders or seeded shoppers unless --reset or "
        "--if-empty is given, and any production database (STOREFRONT_ENV=production) unless "
        "--allow-production is given."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--products", type=int, default=seeding.DEFAULT_PRODUCTS, help="(default %(default)s)"
        )
        parser.add_argument(
            "--orders",
            type=int,
            default=seeding.DEFAULT_ORDERS,
            help="Orders over the last year, 1-5 lines each (default %(default)s).",
        )
        parser.add_argument(
            "--users",
            type=int,
            default=seeding.DEFAULT_USERS,
            help="Seeded shoppers (shopper00001, ...) besides the two demo accounts "
            "(default %(default)s).",
        )
        parser.add_argument(
            "--categories",
            type=int,
            default=seeding.DEFAULT_CATEGORIES,
            help="Size of the two-level category tree (default %(default)s).",
        )
        parser.add_argument(
            "--seed", type=int, default=seeding.DEFAULT_SEED, help="(default %(default)s)"
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--reset",
            action="store_true",
            help="Delete orders, products, categories (on PostgreSQL with TRUNCATE ... CASCADE, "
            "so rows of other tables that point at them too) and seeded shoppers first; "
            "other users, staff included, are kept.",
        )
        mode.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the shop already has data (for start-up scripts).",
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with STOREFRONT_ENV=production: creates the demo accounts with "
            "their published passwords, and with --reset deletes every order and product.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Before anything touches the database: demo logins anyone can read in the README, or a
        # TRUNCATE of the real orders, must never reach a live shop by a stray command.
        if settings.IS_PRODUCTION and not options["allow_production"]:
            harm = (
                f"seeding creates the demo accounts {seeding.DEMO_CUSTOMER[0]!r} and "
                f"{seeding.DEMO_STAFF[0]!r} with published passwords"
            )
            if options["reset"]:
                harm += ", and --reset deletes every order, product and category"
            raise CommandError(
                f"Refusing to seed a production database (STOREFRONT_ENV=production): {harm}. "
                "Pass --allow-production if that is really what you want."
            )
        sizes = {key: options[key] for key in ("products", "orders", "users", "categories")}
        try:
            seeding.validate_sizes(**sizes)
        except ValueError as error:
            raise CommandError(str(error)) from error

        talk = options["verbosity"] >= 1
        existing = {name: n for name, n in seeding.shop_data_counts().items() if n}
        if existing and not options["reset"]:
            found = ", ".join(f"{n:,} {name}" for name, n in existing.items())
            if options["if_empty"]:
                if talk:
                    self.stdout.write(f"The shop already has data ({found}); nothing seeded.")
                return
            raise CommandError(
                f"The database already has shop data ({found}). Run with --reset to replace "
                "it with seeded data, or --if-empty to leave it alone."
            )

        report = seeding.seed_shop(
            **sizes,
            seed=options["seed"],
            reset=options["reset"],
            progress=self.stdout.write if talk else None,
        )
        if not talk:
            return
        self.stdout.write(f"Seeded with --seed {report.seed}:")
        for name, load in report.tables.items():
            self.stdout.write(f"  {name:<24}{load.rows:>12,} rows {load.seconds:>8.1f} s")
        for name, seconds in report.phases.items():
            self.stdout.write(f"  {name:<24}{'':>17} {seconds:>8.1f} s")
        self.stdout.write(self.style.SUCCESS(f"Done in {report.total_seconds:.1f} s."))
        for role, (username, password) in (
            ("customer", seeding.DEMO_CUSTOMER),
            ("staff", seeding.DEMO_STAFF),
        ):
            self.stdout.write(f"  demo {role}: {username} / {password}")
