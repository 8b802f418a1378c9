#!/usr/bin/env python
"""Benchmark of the product CSV import: 100,000 rows into a fresh PostgreSQL database.

Generates a deterministic CSV (one row in 1,000 has a bad price, so the rejection path runs
too) into a temporary directory, creates a throwaway database, migrates it, adds the
categories, then runs the import synchronously (the task's code, no worker) and prints rows/s
and total seconds; then imports the same file again (every row unchanged). The database is
dropped afterwards unless --keep-db. Target: under 60 seconds for 100,000 rows.

    .venv/bin/python bench/import_products.py                 # bench_import on 127.0.0.1:5432
    .venv/bin/python bench/import_products.py --rows 20000 --db other --keep-db
    PGHOST=... PGPORT=... PGUSER=... .venv/bin/python bench/import_products.py
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = 20
ADJECTIVES = ["Oak", "Walnut", "Brass", "Linen", "Steel", "Cotton", "Ceramic", "Glass", "Wool"]
NOUNS = ["Lamp", "Desk", "Chair", "Shelf", "Mug", "Rug", "Vase", "Throw", "Clock", "Tray"]


def write_csv(path: Path, rows: int) -> int:
    """The benchmark file; returns how many rows are deliberately bad."""
    rng = random.Random(2026)
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "category", "price", "stock", "description", "is_active"])
        for n in range(rows):
            price = f"{rng.randint(100, 99999) / 100:.2f}"
            if n % 1000 == 999:
                price, bad = "n/a", bad + 1
            writer.writerow(
                [
                    f"BENCH-{n:06d}",
                    f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {n}",
                    f"bench-category-{rng.randrange(CATEGORIES)}",
                    price,
                    rng.randint(0, 500),
                    f"A {rng.choice(ADJECTIVES).lower()} {rng.choice(NOUNS).lower()}, "
                    "made to last.",
                    "true" if rng.random() > 0.05 else "false",
                ]
            )
    return bad


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True) as connection:
        connection.execute(sql)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", default="bench_import", help="throwaway database (dropped!)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    for name, default in (("PGHOST", "127.0.0.1"), ("PGPORT", "5432"), ("PGUSER", "postgres")):
        os.environ.setdefault(name, default)
    host, port, user = os.environ["PGHOST"], os.environ["PGPORT"], os.environ["PGUSER"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    os.environ.update(
        DATABASE_URL=f"postgres://{user}@{host}:{port}/{args.db}",
        PRIVATE_MEDIA_ROOT=str(workdir / "private"),
        DJANGO_SETTINGS_MODULE="storefront.settings",
    )
    sys.path.insert(0, str(REPO_ROOT))

    csv_path = workdir / "products.csv"
    bad = write_csv(csv_path, args.rows)
    size_mb = csv_path.stat().st_size / 1024 / 1024
    print(f"CSV: {args.rows:,} rows ({bad} bad), {size_mb:.1f} MB in {csv_path}")

    admin_sql(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{args.db}"')
    try:
        import django
        from django.core.files import File
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0)

        from storefront.catalog import imports
        from storefront.catalog.models import Category, Product

        Category.objects.bulk_create(
            Category(name=f"Bench category {n}", slug=f"bench-category-{n}")
            for n in range(CATEGORIES)
        )
        for attempt in ("first import", "same file again"):
            with csv_path.open("rb") as handle:
                record = imports.create_product_import(
                    file=File(handle, name="products.csv"), enqueue=False
                )
            started = time.perf_counter()
            record = imports.run_product_import(import_id=record.pk)
            seconds = time.perf_counter() - started
            print(
                f"{attempt}: {record.status}, {record.processed_rows:,} rows in {seconds:.1f} s "
                f"({record.processed_rows / seconds:,.0f} rows/s): {record.created_count:,} "
                f"created, {record.updated_count:,} updated, {record.unchanged_count:,} "
                f"unchanged, {record.rejected_count:,} rejected"
            )
        print(f"products in the database: {Product.objects.count():,}")
        connections.close_all()
    finally:
        if args.keep_db:
            print(f"Kept database {args.db} (DATABASE_URL={os.environ['DATABASE_URL']})")
        else:
            admin_sql(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        for path in sorted(workdir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
