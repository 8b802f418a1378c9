"""`storefront import_products FILE [--sync]`: import a product CSV from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from storefront.catalog import import_parsing, imports
from storefront.catalog.models import ProductImport


class Command(BaseCommand):
    help = (
        "Import products from a CSV file (header: sku,name,category,price,stock, optional "
        "description,is_active), as the staff import page does. By default the import is "
        "queued for the Celery worker; --sync runs it here and prints the report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the CSV file")
        parser.add_argument(
            "--sync", action="store_true", help="run the import in this process, not the worker"
        )

    def handle(self, *args: Any, file: Path, sync: bool, **options: Any) -> None:
        if not file.is_file():
            raise CommandError(f"{file} is not a file.")
        with file.open("rb") as handle:
            try:
                import_parsing.check_upload(handle)
            except import_parsing.ImportFileError as exc:
                raise CommandError(f"{file}: {exc}") from None
            try:
                record = imports.create_product_import(
                    file=File(handle, name=file.name), user=None, enqueue=not sync
                )
            except imports.UploadStorageFull as exc:
                raise CommandError(str(exc)) from None
        if not sync:
            self.stdout.write(
                f"Import #{record.pk} is queued; follow it at {record.get_absolute_url()} "
                "(or run with --sync)."
            )
            return
        record = imports.run_product_import(import_id=record.pk)
        if record is None:
            raise CommandError("The import is being run by another process.")
        self._report(record)

    def _report(self, record: ProductImport) -> None:
        seconds = (record.finished_at - record.started_at).total_seconds()
        if record.status == ProductImport.Status.FAILED:
            raise CommandError(f"Import #{record.pk} failed: {record.error}")
        self.stdout.write(
            f"Import #{record.pk}: {record.processed_rows} rows in {seconds:.1f}s — "
            f"{record.created_count} created, {record.updated_count} updated, "
            f"{record.unchanged_count} unchanged, {record.rejected_count} rejected."
        )
        for row in record.rejected_rows:
            self.stdout.write(f"  line {row['line']} ({row['sku'] or 'no sku'}): {row['reason']}")
        if record.rejected_rows_not_listed:
            self.stdout.write(f"  …and {record.rejected_rows_not_listed} more rejected rows.")
