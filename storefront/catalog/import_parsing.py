"""Product CSV import, the reading half: the upload check, the CSV reader and the row
validation. Nothing here writes (or reads) the database: the writing half,
storefront/catalog/imports.py, passes in the categories and upserts the valid rows.

The file has a header row naming the columns, in any order::

    sku,name,category,price,stock[,description][,is_active]

``category`` is a category slug. Rows are validated one by one; a bad row is rejected with its
line number and the reasons. A file that cannot be read as a whole (not UTF-8, not CSV, required
columns missing from the header) raises ImportFileError naming the line.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

from storefront.catalog.models import Product

REQUIRED_COLUMNS = ("sku", "name", "category", "price", "stock")
OPTIONAL_COLUMNS = ("description", "is_active")
CENT = Decimal("0.01")
MAX_PRICE = Decimal("99999999.99")  # Product.price: max_digits=10, decimal_places=2
MAX_STOCK = 2_147_483_647  # IntegerField
TRUE_VALUES = frozenset({"1", "true", "yes", "y", "t"})
FALSE_VALUES = frozenset({"0", "false", "no", "n", "f"})
SKU_MAX_LENGTH = Product._meta.get_field("sku").max_length
_PRICE_RE = re.compile(r"\d+(\.\d+)?|\.\d+")
_STOCK_RE = re.compile(r"\d+")
_NAME_MAX = Product._meta.get_field("name").max_length
# How much of an upload the form reads to check its header line.
_HEADER_PEEK_BYTES = 64 * 1024


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message is shown to staff."""


# --- the header -------------------------------------------------------------------------------


def columns_from_header(header: list[str]) -> dict[str, int]:
    """Column name → index, for the columns we know; ImportFileError if the header is bad."""
    names = [name.strip().lower() for name in header]
    if not any(names):
        raise ImportFileError(
            "The first line must be a header row naming the columns: "
            + ",".join(REQUIRED_COLUMNS)
            + " (optional: "
            + ",".join(OPTIONAL_COLUMNS)
            + ")."
        )
    known = [name for name in names if name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    duplicated = sorted({name for name in known if known.count(name) > 1})
    if duplicated:
        raise ImportFileError(f"The header names these columns twice: {', '.join(duplicated)}.")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        found = ", ".join(name for name in names if name)[:200] or "nothing"
        raise ImportFileError(
            f"The header row lacks the required column(s) {', '.join(missing)}. It must name "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)}); "
            f"found: {found}."
        )
    return {name: index for index, name in enumerate(names) if name in known}


def check_upload(upload: IO[bytes]) -> None:
    """Reject obvious non-imports up front (the form's check): empty, binary, not UTF-8, or a
    header without the required columns. The task still checks the whole file."""
    upload.seek(0)
    head = upload.read(_HEADER_PEEK_BYTES)
    upload.seek(0)
    if not head.strip():
        raise ImportFileError("The file is empty.")
    if b"\x00" in head:
        raise ImportFileError("This is not a CSV file (it contains binary data).")
    end = head.find(b"\n")
    if end < 0 and len(head) == _HEADER_PEEK_BYTES:
        raise ImportFileError("This is not a CSV file (no line break in its first 64 KB).")
    first_line = head if end < 0 else head[:end]
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError(
            "The file is not UTF-8 text; save it as “CSV UTF-8” and upload it again."
        ) from None
    columns_from_header(next(csv.reader([text]), []))


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    sku: str
    name: str
    category_id: int
    price: Decimal
    stock: int
    description: str | None  # None: the file has no such column (existing products keep theirs)
    is_active: bool | None


def _parse_price(value: str) -> tuple[Decimal | None, str | None]:
    if not value:
        return None, "price is blank"
    if not _PRICE_RE.fullmatch(value):
        if value.startswith("-") and _PRICE_RE.fullmatch(value[1:]):
            return None, f"price {value} is negative; it must be positive"
        return None, f"price “{value}” is not a decimal number like 12.50"
    price = Decimal(value)
    if price > MAX_PRICE:
        return None, f"price {value} is above the maximum {MAX_PRICE}"
    if price != price.quantize(CENT):
        return None, f"price {value} has more than 2 decimal places"
    if price <= 0:
        return None, f"price {value} must be positive"
    return price.quantize(CENT), None


def _parse_stock(value: str) -> tuple[int | None, str | None]:
    if not value:
        return None, "stock is blank"
    if not _STOCK_RE.fullmatch(value):
        if value.startswith("-") and _STOCK_RE.fullmatch(value[1:]):
            return None, f"stock {value} is negative"
        return None, f"stock “{value}” is not a whole number"
    stock = int(value)
    if stock > MAX_STOCK:
        return None, f"stock {value} is above the maximum {MAX_STOCK}"
    return stock, None


def parse_row(
    fields: list[str], *, line: int, columns: dict[str, int], categories: dict[str, int]
) -> tuple[ImportRow | None, str, str]:
    """(row, sku, "") for a valid row, (None, sku, reasons) for a rejected one."""
    width = max(columns.values()) + 1
    sku = fields[columns["sku"]].strip() if len(fields) > columns["sku"] else ""
    if len(fields) < width:
        return None, sku, f"the row has {len(fields)} field(s); the header has {width}"

    def value(column: str) -> str:
        return fields[columns[column]].strip()

    reasons = []
    if not sku:
        reasons.append("sku is blank")
    elif len(sku) > SKU_MAX_LENGTH:
        reasons.append(f"sku is longer than {SKU_MAX_LENGTH} characters")
    name = value("name")
    if not name:
        reasons.append("name is blank")
    elif len(name) > _NAME_MAX:
        reasons.append(f"name is {len(name)} characters long; the maximum is {_NAME_MAX}")
    category_slug = value("category")
    category_id = categories.get(category_slug)
    if not category_slug:
        reasons.append("category is blank")
    elif category_id is None:
        reasons.append(f"unknown category “{category_slug[:60]}” (give a category slug)")
    price, problem = _parse_price(value("price"))
    if problem:
        reasons.append(problem)
    stock, problem = _parse_stock(value("stock"))
    if problem:
        reasons.append(problem)
    description = value("description") if "description" in columns else None
    is_active = None
    if "is_active" in columns:
        flag = value("is_active").lower()
        if flag in TRUE_VALUES or not flag:
            is_active = True
        elif flag in FALSE_VALUES:
            is_active = False
        else:
            reasons.append(f"is_active “{flag[:20]}” must be true or false (or 1/0, yes/no)")
    if reasons:
        return None, sku, "; ".join(reasons)
    row = ImportRow(line, sku, name, category_id, price, stock, description, is_active)
    return row, sku, ""


# --- reading the file -----------------------------------------------------------------------------


def _text_lines(handle: IO[bytes]) -> Iterator[str]:
    """The file's lines decoded one by one, so a bad byte is reported with its line."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield (raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFileError(
                f"Line {number} is not UTF-8 text; save the file as “CSV UTF-8” and upload it "
                "again."
            ) from None


def read_rows(handle: IO[bytes]) -> Iterator[tuple[int, list[str]] | dict[str, int]]:
    """Yield the columns (from the header) first, then (line, fields) per non-blank row.

    `line` is the physical line the row starts on (the header is line 1). CSV and encoding
    errors become ImportFileError naming the line.
    """
    reader = csv.reader(_text_lines(handle), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFileError("The file is empty.")
        yield columns_from_header(header)
        line = reader.line_num
        for fields in reader:
            start, line = line + 1, reader.line_num
            if not fields:
                continue
            # Python's csv reads NUL bytes as text; PostgreSQL cannot store them.
            if any("\x00" in value for value in fields):
                raise ImportFileError(f"Line {start}: not valid CSV (it contains a NUL byte).")
            yield start, fields
    except csv.Error as exc:
        raise ImportFileError(f"Line {reader.line_num}: not valid CSV ({exc}).") from None


def count_rows(handle: IO[bytes]) -> int:
    """The rows read_rows yields after the header (the progress bar's total); ImportFileError
    for a file that cannot be read to its end."""
    rows = read_rows(handle)
    next(rows)
    return sum(1 for _ in rows)
