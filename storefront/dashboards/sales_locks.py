"""The PostgreSQL advisory locks that order the writers of the sales tables.

Checkouts take SALES_LOCK_KEY shared from their upserts to their commit; a recomputation's apply
step takes it exclusive (see storefront/dashboards/sales_recompute.py). Recomputations serialise
among themselves on RECOMPUTE_LOCK_KEY, which checkouts never touch.
"""

from __future__ import annotations

from django.db import connection

SALES_LOCK_KEY = 0x5F_DA17_5A1E
RECOMPUTE_LOCK_KEY = 0x5F_DA17_5A1F


def sales_lock(*, exclusive: bool) -> None:
    """Checkouts take this lock shared, a recomputation's apply step exclusive (until commit).

    Under it the apply step sees no checkout between its upserts and its commit, so it never
    waits on (or deadlocks with) a checkout's row locks; new checkouts wait for the apply step
    (milliseconds), never for the aggregation (see sales_recompute). SQLite serialises writers
    by itself.
    """
    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [SALES_LOCK_KEY])


def recompute_lock() -> None:
    """Wait for any other recomputation to commit, then hold this one's turn until the commit
    (PostgreSQL; SQLite serialises writers by itself)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RECOMPUTE_LOCK_KEY])
