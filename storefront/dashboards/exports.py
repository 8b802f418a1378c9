"""Order exports to a file: staff request one (request_order_export), a Celery task writes its
CSV in the background (produce_order_export). The streamed download and the CSV format are in
order_csv.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile

from django.db import transaction
from django.utils import timezone

from storefront.accounts.models import User
from storefront.dashboards.forms import ExportFilterForm
from storefront.dashboards.models import OrderExport
from storefront.dashboards.order_csv import order_csv_lines
from storefront.orders.selectors import order_export_rows

logger = logging.getLogger(__name__)


def request_order_export(
    *, user: User, since: dt.date | None = None, until: dt.date | None = None
) -> OrderExport:
    """Queue an export of the orders placed between `since` and `until` (both optional)."""
    from storefront.dashboards.tasks import export_orders

    if since and until and since > until:
        raise ValueError("“since” must not be after “until”.")
    export = OrderExport(
        requested_by=user,
        filters={
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
    )
    export.full_clean(exclude=["file"])
    export.save()
    transaction.on_commit(lambda: export_orders.delay(export.pk))
    return export


def produce_order_export(*, export_id: int) -> OrderExport | None:
    """Write the export's CSV file; idempotent (a finished export is left alone, a retried or
    redelivered one rewrites the same file name). None when the export no longer exists."""
    with transaction.atomic():
        export = OrderExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None:
            return None
        storage = export.file.storage
        if (
            export.status == OrderExport.Status.DONE
            and export.file
            and storage.exists(export.file.name)
        ):
            return export
        export.status = OrderExport.Status.RUNNING
        export.error = ""
        export.save(update_fields=["status", "error"])

    temp_path = None
    try:
        form = ExportFilterForm(data=export.filters or {})
        if not form.is_valid():
            raise ValueError(f"Bad export filters: {form.errors.as_text()}")
        rows = order_export_rows(since=form.cleaned_data["since"], until=form.cleaned_data["until"])
        name = export.download_name
        os.makedirs(storage.location, exist_ok=True)
        # A temporary file beside the final one, renamed over it only once complete: a
        # download never sees half a file, and a crash leaves only a stray ".tmp".
        with tempfile.NamedTemporaryFile(
            "w",
            dir=storage.location,
            prefix=f".{name}.",
            suffix=".tmp",
            delete=False,
            encoding="utf-8",
            newline="",
        ) as out:
            temp_path = out.name
            count = -1  # the header is not a row
            for line in order_csv_lines(rows):
                out.write(line)
                count += 1
        os.replace(temp_path, storage.path(name))
        temp_path = None
    except Exception as error:  # recorded on the export for the staff page
        logger.exception("Order export %s failed", export_id)
        if temp_path:
            _remove_quietly(temp_path)
        OrderExport.objects.filter(pk=export_id).update(
            status=OrderExport.Status.FAILED,
            error=str(error)[:2000] or error.__class__.__name__,
            finished_at=timezone.now(),
        )
        export.refresh_from_db()
        return export

    export.file.name = name
    export.row_count = count
    export.status = OrderExport.Status.DONE
    export.finished_at = timezone.now()
    export.save(update_fields=["file", "row_count", "status", "finished_at"])
    return export


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
