"""Throwaway PostgreSQL databases: created fresh, migrated and seeded by the caller, dropped.

`Database(name)` lives on the server of PGHOST/PGPORT/PGUSER (default postgres@127.0.0.1:5432);
`Database.beside(url, name)` on the server of a database URL (the tests' DATABASE_URL).
A server that refuses the connection raises `Unavailable`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from harness.processes import Unavailable, log

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}


def postgres_admin_url() -> str:
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    return f"postgresql://{user}@{host}:{port}/postgres"


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRES_SCHEMES


@dataclass
class Database:
    """A throwaway PostgreSQL database: `create()`, `drop()`, `size_bytes()`.

    `url` keeps `scheme` and `query` (a test's DATABASE_URL options carry over)."""

    name: str
    admin_url: str = field(default_factory=postgres_admin_url)
    scheme: str = "postgres"
    query: str = ""

    @classmethod
    def beside(cls, url: str, name: str) -> Database:
        """Database `name` on the server (and with the credentials) of database URL `url`."""
        parts = urlsplit(url)
        admin_url = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
        return cls(name, admin_url=admin_url, scheme=parts.scheme, query=parts.query)

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit((self.scheme, parts.netloc, f"/{self.name}", self.query, ""))

    def _admin(self, statement: str, *names: str) -> None:
        """Run `statement` on the server; its `{}` are this database's name, then `names`."""
        import psycopg
        from psycopg import sql

        query = sql.SQL(statement).format(*map(sql.Identifier, (self.name, *names)))
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(query)
        except psycopg.OperationalError as exc:
            where = urlsplit(self.admin_url)
            raise Unavailable(
                f"PostgreSQL at {where.hostname}:{where.port or 5432} unavailable: {exc}"
            ) from exc

    def create(self, *, template: str | None = None) -> Database:
        """Drop any leftover of the same name, then create it (empty, or a copy of `template`)."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        if template:
            self._admin("CREATE DATABASE {} TEMPLATE {}", template)
        else:
            self._admin("CREATE DATABASE {}")
        return self

    def drop(self) -> None:
        try:
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        except Exception as exc:
            log(f"could not drop database {self.name}: {exc}")

    def size_bytes(self) -> int:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute("SELECT pg_database_size(%s)", (self.name,)).fetchone()[0]
