"""Database URLs for child processes (a Celery worker, a child pytest) of a test run."""

from __future__ import annotations

from urllib.parse import urlsplit


def direct_database_url(name: str | None = None) -> str:
    """The server of this run's test database, never through PgBouncer (make test-pgbouncer
    puts one in front: its host and port are then in DATABASE_DIRECT_URL), with database
    `name` (default: this run's test database)."""
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor != "postgresql":
        raise RuntimeError("a PostgreSQL test database is needed")
    name = name or s["NAME"]
    if settings.DATABASE_DIRECT_URL:
        return urlsplit(settings.DATABASE_DIRECT_URL)._replace(path=f"/{name}").geturl()
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


def pooled_database_url() -> str:
    """This run's test database as the app reaches it: through PgBouncer when there is one."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor != "postgresql":
        raise RuntimeError("a PostgreSQL test database is needed")
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
