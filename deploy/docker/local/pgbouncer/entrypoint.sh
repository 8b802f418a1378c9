#!/bin/sh
# `pgbouncer`: render /etc/pgbouncer/pgbouncer.ini.template (the project's
# deploy/pgbouncer/pgbouncer.ini.template) and the auth file into /var/run/pgbouncer, then run
# PgBouncer in the foreground, logging to stderr. From the environment:
#   POSTGRES_HOST (required), POSTGRES_PORT (5432): the primary
#   PGBOUNCER_USER, PGBOUNCER_PASSWORD (required): the app's database user and its password
#     (PostgreSQL's; PgBouncer authenticates clients with SCRAM against it and logs in to the
#     server as that user)
#   PGBOUNCER_ADMIN_PASSWORD (required): the `postgres` user of the admin console (the
#     template's admin_users/stats_users: SHOW POOLS), PgBouncer's own, not a server user
#   PGBOUNCER_POOL_SIZE (20), PGBOUNCER_MAX_CLIENT_CONN (1000), PGBOUNCER_LISTEN_PORT (6432)
set -eu
if [ "${1:-}" = pgbouncer ]; then
  shift
  : "${POSTGRES_HOST:?POSTGRES_HOST must be set}"
  : "${PGBOUNCER_USER:?PGBOUNCER_USER must be set}"
  : "${PGBOUNCER_PASSWORD:?PGBOUNCER_PASSWORD must be set}"
  : "${PGBOUNCER_ADMIN_PASSWORD:?PGBOUNCER_ADMIN_PASSWORD must be set}"
  run=/var/run/pgbouncer
  export POSTGRES_PORT="${POSTGRES_PORT:-5432}"
  export PGBOUNCER_LISTEN_ADDR="*"
  export PGBOUNCER_LISTEN_PORT="${PGBOUNCER_LISTEN_PORT:-6432}"
  export PGBOUNCER_POOL_SIZE="${PGBOUNCER_POOL_SIZE:-20}"
  export PGBOUNCER_MAX_CLIENT_CONN="${PGBOUNCER_MAX_CLIENT_CONN:-1000}"
  export PGBOUNCER_AUTH_TYPE=scram-sha-256
  export PGBOUNCER_AUTH_FILE="$run/userlist.txt"
  export PGBOUNCER_LOGFILE=""
  export PGBOUNCER_PIDFILE=""
  umask 077
  # Only the template's own variables (single quotes: envsubst gets the names, not values): anything else with a $ stays as it is.
  # shellcheck disable=SC2016
  envsubst '$POSTGRES_HOST $POSTGRES_PORT $PGBOUNCER_LISTEN_ADDR $PGBOUNCER_LISTEN_PORT
    $PGBOUNCER_AUTH_TYPE $PGBOUNCER_AUTH_FILE $PGBOUNCER_MAX_CLIENT_CONN $PGBOUNCER_POOL_SIZE
    $PGBOUNCER_LOGFILE $PGBOUNCER_PIDFILE' \
    </etc/pgbouncer/pgbouncer.ini.template >"$run/pgbouncer.ini"
  # userlist.txt: "user" "password", a double quote doubled.
  quote() { printf '"%s"' "$(printf %s "$1" | sed 's/"/""/g')"; }
  {
    printf '%s %s\n' "$(quote "$PGBOUNCER_USER")" "$(quote "$PGBOUNCER_PASSWORD")"
    printf '%s %s\n' '"postgres"' "$(quote "$PGBOUNCER_ADMIN_PASSWORD")"
  } >"$PGBOUNCER_AUTH_FILE"
  set -- pgbouncer "$run/pgbouncer.ini" "$@"
fi
exec "$@"
