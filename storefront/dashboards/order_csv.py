"""The orders CSV, one format for the streamed download and the file written by the task."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

HEADER = ("number", "created_at", "status", "username", "email", "items", "total")


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can stream."""

    def write(self, value: str) -> str:
        return value


def order_csv_lines(rows: Iterable[tuple]) -> Iterator[str]:
    """The header, then one CSV line per row of orders.selectors.order_export_rows."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for number, created_at, *rest in rows:
        yield writer.writerow([number, created_at.isoformat(), *rest])
