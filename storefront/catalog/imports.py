"""Product CSV import, the writing half: batched upserts, progress and report. The file is read
and its rows validated by import_parsing.py (the format is described there).

A rejected row changes nothing. Valid rows are upserted by SKU in batches of BATCH_SIZE, one
transaction per batch: a new SKU creates a product (slug from name and SKU), a known SKU updates
the columns the file has (its slug stays), and a row equal to the product is not written at all.
Running the same file again therefore creates nothing.

A file that cannot be read as a whole (not UTF-8, not CSV, required columns missing from the
header) fails before any row is written: both problems are found by the first pass, which
counts the rows for the progress bar.

Bulk writes skip the model signals, so the catalog cache namespace is bumped here, on commit.

Stock: an import is the source of truth at the moment its batch runs. The ``stock`` column is an
absolute count (what the warehouse counted), not a change, so it is written as it is, under the
rows' lock: each batch locks its existing products (SELECT ... FOR UPDATE, in id order like the
checkout, so the two never deadlock) before reading and comparing them, and holds the locks to
its commit. A checkout then either commits before the batch reads the row (and the file's count
replaces the stock it left), or waits for the batch and sells from the file's count: its
decrement is never lost, and the unchanged/updated counts describe what was really written. A
row whose stock changes bumps the product's stock_version, so an admin form or API client that
read the stock before the import gets a conflict rather than writing over the count. Units sold
between counting and importing are the operator's to account for: import a fresh count, or set
stock by delta through the API (stock_delta) when only arrivals are known.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from storefront import caching
from storefront.accounts.models import User
from storefront.catalog.import_parsing import (
    SKU_MAX_LENGTH,
    ImportFileError,
    ImportRow,
    count_rows,
    parse_row,
    read_rows,
)
from storefront.catalog.models import Product, ProductImport
from storefront.catalog.selectors import category_ids_by_slug, taken_product_slugs

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000
_SLUG_MAX = Product._meta.get_field("slug").max_length
# Key of the PostgreSQL advisory lock that lets one worker at a time run a given import.
_LOCK_CLASS = 0x5F1A

# Bulk inserts leave PostgreSQL's row estimate behind until autovacuum's next ANALYZE, and the
# listing's "About N products" reads that estimate: an import that created this many products
# refreshes the statistics at once (ANALYZE samples a bounded number of rows: ~0.1 s at 1M).
ANALYZE_AFTER_CREATED = 1000


def refresh_planner_statistics(*, created: int) -> None:
    """ANALYZE the products table after a large import (PostgreSQL only)."""
    if created >= ANALYZE_AFTER_CREATED and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE catalog_product")


# --- writing ----------------------------------------------------------------------------------


@dataclass
class _Tally:
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_rows: list[dict] = field(default_factory=list)

    def reject(self, *, line: int, sku: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_rows) < ProductImport.REJECTED_ROWS_KEPT:
            self.rejected_rows.append({"line": line, "sku": sku[:SKU_MAX_LENGTH], "reason": reason})

    def as_fields(self) -> dict[str, int]:
        return {
            "processed_rows": self.processed,
            "created_count": self.created,
            "updated_count": self.updated,
            "unchanged_count": self.unchanged,
            "rejected_count": self.rejected,
        }


def _base_slug(name: str, sku: str) -> str:
    sku_part = slugify(sku) or "product"
    # Leave room for the "-<n>" a collision adds.
    name_part = slugify(name)[: _SLUG_MAX - len(sku_part) - 8].strip("-")
    return f"{name_part}-{sku_part}" if name_part else sku_part


def _unique_slugs(bases: dict[str, str]) -> dict[str, str]:
    """SKU → a slug no product has (and no other new product of this batch gets)."""
    slugs: dict[str, str] = {}
    pending = bases
    for attempt in range(1, 1000):
        candidates = {
            sku: base if attempt == 1 else f"{base[: _SLUG_MAX - 8]}-{attempt}"
            for sku, base in pending.items()
        }
        taken = taken_product_slugs(slugs=set(candidates.values()))
        taken.update(slugs.values())
        retry = {}
        for sku, slug in candidates.items():
            if slug in taken:
                retry[sku] = pending[sku]
            else:
                slugs[sku] = slug
                taken.add(slug)
        if not retry:
            return slugs
        pending = retry
    raise RuntimeError("could not find free slugs for new products")


def _next_stock_version(current: list | None, stock: int) -> int:
    """A new product starts at 0; an existing one's version moves only if its stock does."""
    if current is None:
        return 0
    current_stock, version = current[4], current[7]
    return version if current_stock == stock else version + 1


def _write_batch(rows: list[ImportRow], *, columns: dict[str, int], tally: _Tally) -> None:
    """Upsert one batch by SKU: insert new products, update changed ones, skip equal ones."""
    has_description = "description" in columns
    has_active = "is_active" in columns
    # Locked until the batch commits, in id order (see the module docstring).
    existing = {
        sku: rest
        for sku, *rest in Product.objects.select_for_update()
        .filter(sku__in=[row.sku for row in rows])
        .order_by("pk")
        .values_list(
            "sku",
            "slug",
            "name",
            "category_id",
            "price",
            "stock",
            "description",
            "is_active",
            "stock_version",
        )
    }
    new, changed = [], []
    for row in rows:
        current = existing.get(row.sku)
        if current is None:
            new.append(row)
            continue
        _slug, name, category_id, price, stock, description, is_active, _version = current
        if (
            (name, category_id, price, stock) == (row.name, row.category_id, row.price, row.stock)
            and (not has_description or description == row.description)
            and (not has_active or is_active == row.is_active)
        ):
            tally.unchanged += 1
        else:
            changed.append(row)
    slugs = _unique_slugs({row.sku: _base_slug(row.name, row.sku) for row in new})
    products = [
        Product(
            sku=row.sku,
            # An existing product keeps its slug (it is not in update_fields); giving the
            # proposed row the same one keeps the insert valid should the product vanish.
            slug=slugs[row.sku] if row.sku in slugs else existing[row.sku][0],
            name=row.name,
            category_id=row.category_id,
            price=row.price,
            stock=row.stock,
            description=row.description or "",
            is_active=True if row.is_active is None else row.is_active,
            stock_version=_next_stock_version(existing.get(row.sku), row.stock),
        )
        for row in (*new, *changed)
    ]
    if products:
        update_fields = ["name", "category", "price", "stock", "stock_version", "updated_at"]
        update_fields += ["description"] if has_description else []
        update_fields += ["is_active"] if has_active else []
        # The rows were validated against the model's constraints above (full_clean per row
        # would cost a query per row for the unique checks the upsert already handles).
        Product.objects.bulk_create(
            products,
            update_conflicts=True,
            unique_fields=["sku"],
            update_fields=update_fields,
        )
    tally.created += len(new)
    tally.updated += len(changed)


def _count_rows(record: ProductImport) -> int:
    with record.file.open("rb") as handle:
        return count_rows(handle)


def _import_rows(record: ProductImport) -> _Tally:
    categories = category_ids_by_slug()
    tally = _Tally()
    first_line_of: dict[str, int] = {}
    batch: list[ImportRow] = []
    progress = ProductImport.objects.filter(pk=record.pk)

    def flush() -> None:
        with transaction.atomic():
            if batch:
                _write_batch(batch, columns=columns, tally=tally)
            progress.update(**tally.as_fields())
        batch.clear()

    with record.file.open("rb") as handle:
        rows = read_rows(handle)
        columns = next(rows)
        for line, fields in rows:
            tally.processed += 1
            row, sku, reasons = parse_row(fields, line=line, columns=columns, categories=categories)
            if row is None:
                tally.reject(line=line, sku=sku, reason=reasons)
            elif sku in first_line_of:
                tally.reject(
                    line=line,
                    sku=sku,
                    reason=f"duplicate sku: already on line {first_line_of[sku]}",
                )
            else:
                first_line_of[sku] = line
                batch.append(row)
            if tally.processed % BATCH_SIZE == 0:
                flush()
        flush()
    return tally


# --- the import as a whole --------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(import_id: int) -> Iterator[bool]:
    """True if this process may run the import: a redelivered task waits for no one, but two
    workers never run the same import at once (PostgreSQL session advisory lock)."""
    if connection.vendor != "postgresql":
        yield True
        return
    if settings.DATABASE_DIRECT_URL:
        # Behind PgBouncer's transaction pooling, lock and unlock could land on two server
        # connections: the lock is held on a connection of its own to the primary instead.
        # The primary of DATABASE_URL, and the database the app uses (the same name, but for
        # a test run's test database).
        from urllib.parse import urlsplit

        import psycopg

        url = urlsplit(settings.DATABASE_DIRECT_URL)
        url = url._replace(path="/" + connection.settings_dict["NAME"]).geturl()
        with psycopg.connect(url, autocommit=True) as direct:
            row = direct.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, import_id]
            ).fetchone()
            yield bool(row and row[0])  # closing the connection releases the lock
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, import_id])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, import_id])


def _finish(record: ProductImport, *, status: str, tally: _Tally | None, error: str = "") -> None:
    fields = {"status": status, "finished_at": timezone.now(), "error": error}
    if tally is not None:
        fields.update(tally.as_fields(), rejected_rows=tally.rejected_rows)
    ProductImport.objects.filter(pk=record.pk).update(**fields)
    record.refresh_from_db()


def run_product_import(*, import_id: int) -> ProductImport | None:
    """Run one import to the end (the task's body; the command's --sync).

    A finished import is returned as it is. A queued one, or a running one whose worker died
    (the task is redelivered), starts from the first row: upserts make that harmless, though
    rows written by the first attempt then count as unchanged. Returns None when the import no
    longer exists or another worker is running it.
    """
    with _exclusive(import_id) as acquired:
        if not acquired:
            logger.info("product import #%s is being run by another worker", import_id)
            return None
        record = ProductImport.objects.filter(pk=import_id).first()
        if record is None:
            logger.warning("product import #%s does not exist", import_id)
            return None
        if record.is_finished:
            return record
        ProductImport.objects.filter(pk=record.pk).update(
            status=ProductImport.Status.RUNNING,
            started_at=timezone.now(),
            finished_at=None,
            total_rows=None,
            error="",
            rejected_rows=[],
            **_Tally().as_fields(),
        )
        try:
            total = _count_rows(record)
            ProductImport.objects.filter(pk=record.pk).update(total_rows=total)
            tally = _import_rows(record)
        except ImportFileError as exc:
            _finish(record, status=ProductImport.Status.FAILED, tally=None, error=str(exc))
        except FileNotFoundError:
            _finish(
                record,
                status=ProductImport.Status.FAILED,
                tally=None,
                error="The uploaded file is missing from storage; upload it again.",
            )
        except SoftTimeLimitExceeded:
            _finish(
                record,
                status=ProductImport.Status.FAILED,
                tally=None,
                error="The import took longer than the task time limit; rows imported so far "
                "are kept. Split the file or raise CELERY_TASK_SOFT_TIME_LIMIT.",
            )
        except Exception as exc:  # recorded for staff rather than lost in a worker log
            logger.exception("product import #%s failed", import_id)
            _finish(
                record,
                status=ProductImport.Status.FAILED,
                tally=None,
                error=f"The import stopped on an unexpected error ({type(exc).__name__}); rows "
                "imported so far are kept. Details are in the worker log.",
            )
        else:
            _finish(record, status=ProductImport.Status.DONE, tally=tally)
            refresh_planner_statistics(created=record.created_count)
        finally:
            # Batches may have committed even if a later one failed.
            transaction.on_commit(lambda: caching.bump_namespace("catalog"), robust=True)
        logger.info(
            "product import #%s %s: %s created, %s updated, %s unchanged, %s rejected",
            record.pk,
            record.status,
            record.created_count,
            record.updated_count,
            record.unchanged_count,
            record.rejected_count,
        )
        return record


# The storage is full (no space, or the user's quota): the upload cannot be kept right now.
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class UploadStorageFull(Exception):
    """The file could not be stored because its disk is full; nothing was recorded."""

    message = (
        "The server has no room to store this file right now, so nothing was imported. "
        "Please try again later; the operators have been alerted."
    )


def create_product_import(
    *, file: File, user: User | None = None, enqueue: bool = True
) -> ProductImport:
    """Store the uploaded file privately and (after commit) queue the task that imports it.

    The caller has validated the upload (ProductImportForm / the admin form check size,
    extension and header); the management command passes operator files as they are.
    A full disk raises UploadStorageFull (nothing recorded, the partial file removed).
    """
    from storefront.catalog import tasks  # tasks imports this module

    original_name = os.path.basename(file.name or "products.csv")[:255]
    with transaction.atomic():
        record = ProductImport(original_name=original_name, created_by=user)
        storage = record.file.storage
        # The name is chosen first so that a write that fails half-way can be removed: a
        # partial file would hold on to the last free space of a disk that is already full.
        name = storage.get_available_name(
            record.file.field.generate_filename(record, original_name)
        )
        try:
            record.file.name = storage.save(name, file)
        except OSError as exc:
            if exc.errno not in STORAGE_FULL_ERRNOS:
                raise
            with contextlib.suppress(OSError):
                storage.delete(name)
            logger.error("product import upload refused: storage full (%s)", exc)
            raise UploadStorageFull(UploadStorageFull.message) from exc
        record.save()
        if enqueue:
            transaction.on_commit(lambda: tasks.import_products.delay(record.pk))
    return record
