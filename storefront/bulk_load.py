"""Bulk loading of rows with explicit ids, for the apps' bulk-load services (the seed uses them).

PostgreSQL is loaded with COPY. The secondary indexes, unique and foreign-key constraints of the
bulk tables can be dropped for the load and rebuilt afterwards (as pg_restore does): building an
index once from sorted data and checking a foreign key with one join is many times cheaper than
maintaining them row by row. Everything happens in the caller's transaction, so a failure rolls
the load back, DDL included. SQLite, the embedded default, gets batched INSERTs of the same rows.

Each app's service names its tables and columns (catalog, accounts and orders have a
``bulk_load_*`` function); the loader only moves rows and restores what it dropped.
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from django.core.management.color import no_style
from django.db import connection
from django.db.models import Model

# Rows per COPY or INSERT batch: large enough to amortise the round trip, small enough that a
# chunk of orders and their lines stays a few megabytes.
CHUNK_ROWS = 20_000


class TableLoader(ABC):
    """Writes rows into tables; one implementation per database backend.

    Remembers the statements that rebuild what defer_indexes() dropped.
    """

    def __init__(self) -> None:
        self._rebuild: list[str] = []

    @abstractmethod
    def format_timestamp(self, epoch_seconds: int) -> str:
        """An aware datetime column's value as this backend stores it."""

    @abstractmethod
    def _write(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None: ...

    def load(self, *, model: type[Model], columns: Sequence[str], rows: Iterable[tuple]) -> int:
        """Write `rows` (values in `columns` order, ids included) in chunks; the row count."""
        table = model._meta.db_table
        written = 0
        iterator = iter(rows)
        while chunk := list(itertools.islice(iterator, CHUNK_ROWS)):
            self._write(table, columns, chunk)
            written += len(chunk)
        return written

    def defer_indexes(self, *, models: Sequence[type[Model]]) -> None:
        """Drop what slows a bulk load into these models' tables down, until restore_indexes."""
        return None  # SQLite: demo sizes load fast enough with the indexes in place

    @property
    def indexes_deferred(self) -> bool:
        return bool(self._rebuild)

    def restore_indexes(self) -> None:
        """Rebuild what defer_indexes dropped."""
        self.execute(self._rebuild)
        self._rebuild = []

    def reset_sequences(self, *, models: Sequence[type[Model]]) -> None:
        """Move the models' identity sequences past the ids loaded explicitly (SQLite does that
        by itself)."""
        self.execute(connection.ops.sequence_reset_sql(no_style(), list(models)))

    def execute(self, statements: Iterable[str]) -> None:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def analyze(self, *, models: Sequence[type[Model]]) -> None:
        """Refresh the planner's statistics of the models' tables."""
        tables = [m._meta.db_table for m in models]
        self.execute(f"ANALYZE {connection.ops.quote_name(table)}" for table in tables)

    def settle_deferred_checks(self) -> None:
        """Run the foreign-key checks this transaction has deferred so far."""
        return None  # SQLite can alter and delete with checks pending


class PostgresCopyLoader(TableLoader):
    def format_timestamp(self, epoch_seconds: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch_seconds))

    def _write(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        quote = connection.ops.quote_name
        sql = f"COPY {quote(table)} ({', '.join(map(quote, columns))}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def defer_indexes(self, *, models: Sequence[type[Model]]) -> None:
        tables = [m._meta.db_table for m in models]
        # Unique constraints that another table's foreign key points at must stay; primary keys
        # stay too (rows arrive in key order, so keeping them costs little).
        constraints_sql = """
            SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', c.conrelid::regclass, c.conname),
                   format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s',
                          c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
            FROM pg_constraint c
            WHERE c.conrelid = ANY(%s::regclass[])
              AND (c.contype = 'f'
                   OR (c.contype = 'u' AND NOT EXISTS (
                        SELECT 1 FROM pg_constraint f
                        WHERE f.contype = 'f' AND f.conindid = c.conindid)))
            ORDER BY c.contype = 'u', c.conname
        """
        indexes_sql = """
            SELECT format('DROP INDEX %%s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (
                SELECT 1 FROM pg_constraint c
                WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                  AND c.contype IN ('p', 'u', 'x'))
            ORDER BY i.indexrelid::regclass::text
        """
        with connection.cursor() as cursor:
            # Foreign keys first (in the order returned: FKs, then unique constraints).
            cursor.execute(constraints_sql, [tables])
            constraints = cursor.fetchall()
            for drop, _create in constraints:
                cursor.execute(drop)
            cursor.execute(indexes_sql, [tables])
            indexes = cursor.fetchall()
            for drop, _create in indexes:
                cursor.execute(drop)
        # Index builds sort in memory when they can; this is per operation, for this
        # transaction only.
        rebuild = ["SET LOCAL maintenance_work_mem = '256MB'"]
        rebuild += [create for _drop, create in indexes]
        # Unique constraints before the foreign keys that might need them.
        rebuild += [create for _drop, create in reversed(constraints)]
        self._rebuild += rebuild

    def analyze(self, *, models: Sequence[type[Model]]) -> None:
        quote = connection.ops.quote_name
        tables = [m._meta.db_table for m in models]
        self.execute([f"ANALYZE {', '.join(map(quote, tables))}"])

    def settle_deferred_checks(self) -> None:
        # Switching to immediate runs the queued checks now; then back to Django's default.
        self.execute(["SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED"])


class SqliteInsertLoader(TableLoader):
    def format_timestamp(self, epoch_seconds: int) -> str:
        # Django stores aware datetimes on SQLite as naive UTC text.
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))

    def _write(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        quote = connection.ops.quote_name
        placeholders = ", ".join(["%s"] * len(columns))
        # Table and column names come from the models, quoted; the values are parameters.
        names = ", ".join(map(quote, columns))
        sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({placeholders})"  # noqa: S608 - see above
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def loader_for_connection() -> TableLoader:
    """A fresh loader for the default database's backend."""
    if connection.vendor == "postgresql":
        return PostgresCopyLoader()
    return SqliteInsertLoader()
