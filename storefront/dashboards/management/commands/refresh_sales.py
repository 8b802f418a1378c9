"""`storefront refresh_sales`: recompute the staff dashboard's sales tables from the orders."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from storefront.dashboards import sales


class Command(BaseCommand):
    help = (
        "Recompute the denormalized sales tables (DailySales, ProductDailySales, "
        "ProductSales30d) from the orders, as the nightly task does. On PostgreSQL checkouts "
        "wait only while the differences are applied (milliseconds when the tables are "
        "current); --all on a big shop still reads every order."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument(
            "--days",
            type=int,
            default=sales.DEFAULT_REFRESH_DAYS,
            help="The last N days, today included (default %(default)s).",
        )
        scope.add_argument("--all", action="store_true", help="Every day with orders.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = None if options["all"] else options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be 1 or more (or use --all).")
        result = sales.refresh_daily_sales(days=days)
        if options["verbosity"] >= 1:
            scope = f"since {result.first_day}" if result.first_day else "every day"
            self.stdout.write(
                self.style.SUCCESS(
                    f"Refreshed daily sales ({scope}): {result.days:,} days with revenue, "
                    f"{result.product_rows:,} product-day rows corrected in "
                    f"{result.seconds:.1f} s (checkouts held {result.locked_seconds:.3f} s)."
                )
            )
