"""`storefront check_services [NAME ...]`: the /readyz checks from a shell; exit 1 on failure.

Used as the healthcheck of processes that serve no HTTP (Celery worker and beat containers),
and by operators: `storefront check_services database broker`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from storefront.ops.health import CHECKS, run_checks


class Command(BaseCommand):
    help = (
        "Check the services Storefront depends on (database, cache, broker); exit 1 if any fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names", nargs="*", help=f"checks to run: {', '.join(CHECKS)} (default: all)"
        )

    def handle(self, *args: Any, names: list[str], **options: Any) -> None:
        unknown = sorted(set(names) - set(CHECKS))
        if unknown:
            raise CommandError(
                f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECKS)}"
            )
        failed = []
        for result in run_checks():
            if names and result.name not in names:
                continue
            status = "ok" if result.ok else "FAILED"
            self.stdout.write(
                f"{result.name:10} {status:6} {result.milliseconds:7.1f} ms  {result.detail}"
            )
            if not result.ok:
                failed.append(result.name)
        if failed:
            raise CommandError(f"not ready: {', '.join(failed)}")
