"""Counting the queries one request makes, for the exact per-page query budgets."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def queries_for(client: Client, url: str, *, expect_status: int = 200) -> int:
    """Requests `url` and returns how many SQL queries answering it took."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == expect_status, (url, response.status_code)
    return len(ctx.captured_queries)
