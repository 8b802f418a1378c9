#!/bin/bash
# First start (empty PGDATA): initdb (UTF-8, C.UTF-8), password authentication for every
# network connection, then POSTGRES_USER owns POSTGRES_DB. Every start: exec postgres listening
# on all addresses of the container.
#
# Streaming replication (compose.scaleout.yaml; docs/deploy-compose.md, "Scale-out rehearsal"):
# - a primary with POSTGRES_REPLICATION_USER and POSTGRES_REPLICATION_PASSWORD set also gets, on
#   first start, that role (LOGIN REPLICATION, nothing else) and a pg_hba.conf entry letting it
#   stream from any address of the compose network (password authentication);
# - a replica: POSTGRES_PRIMARY_HOST (and POSTGRES_PRIMARY_PORT, default 5432) set. On first
#   start (empty PGDATA) it waits for the primary, copies it with pg_basebackup -R (the standby
#   signal and primary_conninfo written for it) as the replication user, then starts as a hot
#   standby. POSTGRES_PASSWORD is not needed there: users and passwords are the primary's.
set -euo pipefail

user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
replication_user="${POSTGRES_REPLICATION_USER:-}"
primary_host="${POSTGRES_PRIMARY_HOST:-}"

if [[ "${1:-}" == postgres && -n "$primary_host" && ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${replication_user:?POSTGRES_REPLICATION_USER must be set for a replica}"
  : "${POSTGRES_REPLICATION_PASSWORD:?POSTGRES_REPLICATION_PASSWORD must be set for a replica}"
  primary_port="${POSTGRES_PRIMARY_PORT:-5432}"
  for attempt in $(seq 1 "${POSTGRES_PRIMARY_WAIT_SECONDS:-120}"); do
    pg_isready -q -h "$primary_host" -p "$primary_port" && break
    echo "postgres-entrypoint: waiting for the primary $primary_host:$primary_port ($attempt)" >&2
    sleep 1
  done
  # -X stream: the WAL written during the copy comes along; -R: standby.signal and
  # primary_conninfo (with the password) in postgresql.auto.conf.
  PGPASSWORD="$POSTGRES_REPLICATION_PASSWORD" pg_basebackup -h "$primary_host" \
    -p "$primary_port" -U "$replication_user" -D "$PGDATA" -X stream -R --no-password \
    --checkpoint=fast
  chmod 0700 "$PGDATA"
  echo "postgres-entrypoint: replica of $primary_host:$primary_port made by pg_basebackup" >&2
fi

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
  if [[ -n "$replication_user" ]]; then
    : "${POSTGRES_REPLICATION_PASSWORD:?POSTGRES_REPLICATION_PASSWORD must be set}"
    # The password goes in as a psql variable (quoted by psql), never on a command line.
    psql -v ON_ERROR_STOP=1 -q --username="$user" --dbname=postgres \
      -v name="$replication_user" -v password="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE :"name" WITH LOGIN REPLICATION PASSWORD :'password';
SQL
    echo "host replication $replication_user all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "postgres-entrypoint: replication role $replication_user may stream" >&2
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: created database $database owned by $user" >&2
fi

if [[ "${1:-}" == postgres ]]; then
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
