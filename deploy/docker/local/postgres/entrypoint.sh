#!/bin/bash
# First start (empty PGDATA): initdb (UTF-8, C.UTF-8), password authentication for every
# network connection, then POSTGRES_USER owns POSTGRES_DB. Every start: exec postgres listening
# on all addresses of the container.
set -euo pipefail

user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"

if [[ "${1:-}" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --username="$user" --pwfile="$password_file" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Local socket only while the database is created.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [[ "$database" != postgres ]]; then
    createdb --username="$user" --owner="$user" "$database"
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: created database $database owned by $user" >&2
fi

if [[ "${1:-}" == postgres ]]; then
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
