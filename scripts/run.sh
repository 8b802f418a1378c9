#!/usr/bin/env bash
# `make run`: install, migrate, seed on first run, collect static files, then serve Storefront.
#
# Embedded defaults: SQLite and a file cache under var/ (STOREFRONT_VAR_DIR). With DATABASE_URL
# and REDIS_URL in the environment, settings.py uses PostgreSQL and Redis instead.
#
# With nginx on PATH (and GUNICORN_BIND unset): the config from deploy/nginx/ is rendered into
# var/nginx/ (scripts/render_nginx.py), a self-signed certificate made once into var/tls/, and
# INSTANCES gunicorns (default 1) serve unix sockets var/run/gunicorn-N.sock behind nginx on
# NGINX_LISTEN_HTTP (127.0.0.1:8000) and NGINX_LISTEN_HTTPS (127.0.0.1:8443).
# Without nginx (or with GUNICORN_BIND set): gunicorn alone on GUNICORN_BIND (127.0.0.1:8000).
# With a broker (REDIS_URL or CELERY_BROKER_URL): a Celery worker (CELERY_CONCURRENCY, default 2)
# and beat as well. STOREFRONT_SITE_URL (links in emails) defaults to the HTTP address served.
# With REDIS_URL but no REDIS_CACHE_URL, and redis-server on PATH: a Redis of its own for the
# cache (cache-redis, unix socket var/run/cache-redis.sock, REDIS_CACHE_MAXMEMORY, default
# 256mb, allkeys-lru, no persistence); REDIS_URL keeps sessions and the task queue. Without
# redis-server, the banner warns that the cache shares REDIS_URL.
#
# With PGBOUNCER=1, a PostgreSQL DATABASE_URL and pgbouncer on PATH: a PgBouncer of its own in
# transaction pooling mode (deploy/pgbouncer/, on 127.0.0.1:PGBOUNCER_PORT, default 6432, at most
# PGBOUNCER_POOL_SIZE server connections, default 20) that gunicorn, the worker and beat reach
# through PGBOUNCER_URL; migrations and the seed run on DATABASE_URL directly.
#
# honcho supervises them all from a Procfile generated into var/Procfile: Ctrl-C or SIGTERM
# stops every process, and so does any one of them exiting.
# Every GUNICORN_* variable (deploy/gunicorn.conf.py) applies.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
var_dir="${STOREFRONT_VAR_DIR:-$PWD/var}"
use_nginx=0
if [[ -z "${GUNICORN_BIND:-}" ]]; then
  if command -v nginx >/dev/null 2>&1; then
    use_nginx=1
  else
    echo "==> nginx is not installed: serving with gunicorn alone on 127.0.0.1:8000" \
      "(apt-get install nginx to serve through nginx with HTTPS)"
  fi
fi
export GUNICORN_BIND="${GUNICORN_BIND:-127.0.0.1:8000}"
# Readable log lines in the terminal (production defaults to JSON lines; docs/logging.md).
export LOG_FORMAT="${LOG_FORMAT:-text}"

scripts/bootstrap.sh

# SQLite creates its file but not the directory that holds it.
mkdir -p "${STOREFRONT_VAR_DIR:-$PWD/var}"
# Prometheus metrics of this run's processes (docs/monitoring.md): emptied at each start; every
# gunicorn instance and the Celery worker write their own subdirectory of it.
export STOREFRONT_METRICS_DIR="${STOREFRONT_METRICS_DIR:-$var_dir/metrics}"
rm -rf "$STOREFRONT_METRICS_DIR"

storefront="$VENV/bin/storefront"
echo "==> migrating the database"
"$storefront" migrate --noinput
echo "==> seeding demo data (only into an empty database)"
"$storefront" seed --if-empty
echo "==> collecting static files"
"$storefront" collectstatic --noinput --verbosity 0

# What settings.py resolved: static and media roots (for nginx) and the Celery broker.
mapfile -t resolved < <("$VENV/bin/python" -c '
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
django.setup()
from django.conf import settings
print(settings.STATIC_ROOT)
print(settings.MEDIA_ROOT)
print(settings.STOREFRONT_BROKER_URL)')
broker_url="${resolved[2]:-}"

case "$GUNICORN_BIND" in
  unix:*) base_url="$GUNICORN_BIND" ;;
  *) base_url="http://$GUNICORN_BIND" ;;
esac

with_port() {  # "8000" -> "127.0.0.1:8000"; "host:port" unchanged
  case "$1" in *:*) echo "$1" ;; *) echo "127.0.0.1:$1" ;; esac
}

if ((use_nginx)); then
  # gunicorn listens on unix sockets only nginx reaches: Django may believe its
  # X-Forwarded-Proto (settings.py SECURE_PROXY_SSL_HEADER).
  export STOREFRONT_BEHIND_PROXY=1
  export NGINX_LISTEN_HTTP="${NGINX_LISTEN_HTTP:-127.0.0.1:8000}"
  export NGINX_LISTEN_HTTPS="${NGINX_LISTEN_HTTPS:-127.0.0.1:8443}"
  instances="${INSTANCES:-1}"
  mkdir -p "$var_dir/run"
  sockets=()
  for ((i = 1; i <= instances; i++)); do
    sockets+=("unix:$var_dir/run/gunicorn-$i.sock")
  done
  export NGINX_UPSTREAM_SOCKETS="${sockets[*]}"
  export NGINX_STATIC_ROOT="${NGINX_STATIC_ROOT:-${resolved[0]}}"
  export NGINX_MEDIA_ROOT="${NGINX_MEDIA_ROOT:-${resolved[1]}}"
  mkdir -p "$NGINX_MEDIA_ROOT"
  export NGINX_TLS_CERT="${NGINX_TLS_CERT:-$var_dir/tls/dev-cert.pem}"
  export NGINX_TLS_KEY="${NGINX_TLS_KEY:-$var_dir/tls/dev-key.pem}"
  scripts/make_dev_cert.sh "$var_dir/tls"
  echo "==> rendering the nginx config into $var_dir/nginx"
  "$VENV/bin/python" scripts/render_nginx.py "$var_dir/nginx"
  nginx_args=(-p "$var_dir/nginx" -c "$var_dir/nginx/nginx.conf" -e "$var_dir/nginx/logs/error.log")
  nginx "${nginx_args[@]}" -t -q
  base_url="http://$(with_port "$NGINX_LISTEN_HTTP")"
fi

# Links in emails sent by Celery (no request to take the address from) point where we serve.
if [[ -z "${STOREFRONT_SITE_URL:-}" && "$base_url" == http* ]]; then
  export STOREFRONT_SITE_URL="$base_url"
fi

"$VENV/bin/python" - "$base_url" <<'PY'
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
django.setup()

from storefront.seeding import DEMO_CUSTOMER, DEMO_STAFF  # noqa: E402

base = sys.argv[1].rstrip("/")
print(
    f"""
Storefront is starting. Press Ctrl-C to stop it.

  Shop              {base}/
  Staff dashboard   {base}/staff/dashboard/
  Operations        {base}/staff/ops/ (charts of minute samples taken by beat)
  Admin             {base}/admin/
  API docs          {base}/api/docs/

  Customer login    {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}
  Staff login       {DEMO_STAFF[0]} / {DEMO_STAFF[1]}
""",
    flush=True,
)
PY

# The cache's own Redis: it evicts (allkeys-lru under maxmemory), so a flood of cache entries
# drops old cache entries, never the sessions and queued tasks on REDIS_URL. The eviction
# policy belongs to a whole server, so another database number of REDIS_URL would not do.
cache_redis=0
cache_warning=""
if [[ -n "${REDIS_URL:-}" && -z "${REDIS_CACHE_URL:-}" ]]; then
  if command -v redis-server >/dev/null 2>&1; then
    cache_redis=1
    cache_socket="$var_dir/run/cache-redis.sock"
    mkdir -p "$var_dir/run" "$var_dir/cache-redis"
    rm -f "$cache_socket"
    export REDIS_CACHE_URL="unix://$cache_socket"
  else
    cache_warning="the cache shares REDIS_URL with sessions and the task queue, and that Redis"
    cache_warning+=" has no memory limit: set REDIS_CACHE_URL to a separate Redis with maxmemory"
    cache_warning+=" and allkeys-lru (or apt-get install redis-server: make run then starts one)"
  fi
elif [[ -n "${REDIS_URL:-}" && "${REDIS_CACHE_URL:-}" == "$REDIS_URL" ]]; then
  cache_warning="REDIS_CACHE_URL is REDIS_URL: cache entries compete with sessions and the task"
  cache_warning+=" queue for memory; give the cache a separate, evicting Redis"
fi

# PgBouncer (PGBOUNCER=1): rendered from the one template every target uses.
pgbouncer=0
if [[ "${PGBOUNCER:-0}" == 1 ]]; then
  case "${DATABASE_URL:-}" in
    postgres://* | postgresql://*) ;;
    *) echo "PGBOUNCER=1 needs a PostgreSQL DATABASE_URL (postgres://...)" >&2 && exit 1 ;;
  esac
  command -v pgbouncer >/dev/null 2>&1 || {
    echo "PGBOUNCER=1 needs pgbouncer (apt-get install pgbouncer)" >&2
    exit 1
  }
  pgbouncer=1
  mapfile -t db < <("$VENV/bin/python" -c '
import os, urllib.parse as u
p = u.urlsplit(os.environ["DATABASE_URL"])
print(p.hostname or "127.0.0.1"); print(p.port or 5432); print(u.unquote(p.username or "postgres"))
print(u.unquote(p.password or "")); print(p.path.lstrip("/"))')
  pgb_dir="$var_dir/pgbouncer"
  pgb_user=()
  if ((EUID == 0)); then
    # PgBouncer refuses to run as root: then it runs as the postgres user, from a directory of
    # its own that user can reach (var/ may sit under a directory only root may enter).
    pgb_user=(-u postgres)
    pgb_dir=$(mktemp -d /tmp/storefront-pgbouncer.XXXXXX)
  fi
  mkdir -p "$pgb_dir"
  printf '"%s" "%s"\n' "${db[2]}" "${db[3]}" >"$pgb_dir/userlist.txt"
  chmod 600 "$pgb_dir/userlist.txt"
  PGBOUNCER_LISTEN_ADDR=127.0.0.1 PGBOUNCER_LISTEN_PORT="${PGBOUNCER_PORT:-6432}" \
    POSTGRES_HOST="${db[0]}" POSTGRES_PORT="${db[1]}" \
    PGBOUNCER_POOL_SIZE="${PGBOUNCER_POOL_SIZE:-20}" PGBOUNCER_MAX_CLIENT_CONN=1000 \
    PGBOUNCER_AUTH_TYPE=trust PGBOUNCER_AUTH_FILE="$pgb_dir/userlist.txt" \
    PGBOUNCER_LOGFILE="$pgb_dir/pgbouncer.log" PGBOUNCER_PIDFILE="$pgb_dir/pgbouncer.pid" \
    envsubst <deploy/pgbouncer/pgbouncer.ini.template >"$pgb_dir/pgbouncer.ini"
  if ((EUID == 0)); then
    chown -R postgres "$pgb_dir"
  fi
  credentials="${db[2]}${db[3]:+:${db[3]}}"
  export PGBOUNCER_URL="postgres://$credentials@127.0.0.1:${PGBOUNCER_PORT:-6432}/${db[4]}"
fi

# One process manager supervises everything: honcho, with a Procfile generated for this run
# (the number of gunicorn instances, and whether a Celery worker and beat run, vary).
procfile="$var_dir/Procfile"
gunicorn_cmd="exec $(printf '%q' "$VENV/bin/gunicorn") -c deploy/gunicorn.conf.py storefront.wsgi"
wait_cache=""
if ((pgbouncer)); then
  # gunicorn and the worker start once PgBouncer listens (up to 10 s).
  wait_cache="n=0; until (exec 3<>/dev/tcp/127.0.0.1/${PGBOUNCER_PORT:-6432}) 2>/dev/null; do"
  wait_cache+=" n=\$((n + 1)); [ \$n -le 100 ] || break; sleep 0.1; done; "
fi
if ((cache_redis)); then
  # gunicorn starts once the cache's socket exists (up to 10 s; then it starts anyway: cache
  # errors only make pages slower), so its first pages find the cache.
  wait_cache+="n=0; until [ -S $(printf '%q' "$cache_socket") ]; do n=\$((n + 1));"
  wait_cache+=" [ \$n -le 100 ] || break; sleep 0.1; done; "
fi
{
  echo "# Generated by scripts/run.sh for this run; edits are overwritten."
  if ((pgbouncer)); then
    echo "pgbouncer: exec $(printf '%q ' "$(command -v pgbouncer)" "${pgb_user[@]}" "$pgb_dir/pgbouncer.ini")"
  fi
  if ((cache_redis)); then
    echo "cache-redis: exec $(printf '%q' "$(command -v redis-server)") --port 0" \
      "--unixsocket $(printf '%q' "$cache_socket")" \
      "--unixsocketperm 700 --dir $(printf '%q' "$var_dir/cache-redis") --save '' --appendonly no" \
      "--maxmemory $(printf '%q' "${REDIS_CACHE_MAXMEMORY:-256mb}") --maxmemory-policy allkeys-lru"
  fi
  if ((use_nginx)); then
    i=0
    for socket in "${sockets[@]}"; do
      i=$((i + 1))
      rm -f "${socket#unix:}"
      echo "web$i: ${wait_cache}GUNICORN_BIND=$(printf '%q' "$socket") STOREFRONT_METRICS_GROUP=web$i $gunicorn_cmd"
    done
    # nginx starts once every gunicorn socket exists: a request sent to a socket that is not
    # there yet would mark that instance failed (max_fails) for fail_timeout.
    socket_paths=()
    for socket in "${sockets[@]}"; do
      socket_paths+=("${socket#unix:}")
    done
    wait_sockets="for s in $(printf '%q ' "${socket_paths[@]}"); do n=0; until [ -S \"\$s\" ]; do"
    wait_sockets+=" n=\$((n + 1)); [ \$n -le 1200 ] || exit 1; sleep 0.1; done; done"
    echo "nginx: $wait_sockets; exec nginx $(printf '%q ' "${nginx_args[@]}")-g 'daemon off;'"
  else
    echo "web: ${wait_cache}$gunicorn_cmd"
  fi
  if [[ -n "$broker_url" ]]; then
    celery="exec $(printf '%q' "$VENV/bin/celery") -A storefront"
    echo "worker: ${wait_cache}$celery worker --loglevel=INFO --concurrency=${CELERY_CONCURRENCY:-2}"
    echo "beat: ${wait_cache}$celery beat --loglevel=INFO"
  fi
} >"$procfile"

if ((use_nginx)); then
  echo "  HTTPS (self-signed) https://$(with_port "$NGINX_LISTEN_HTTPS")/"
  echo "  nginx logs        $var_dir/nginx/logs/"
fi
if [[ -n "$broker_url" ]]; then
  echo "  Celery            worker and beat on the broker ${broker_url%%://*}://… (CELERY_BROKER_URL)"
else
  echo "  Celery            no broker configured: tasks run in-process (set REDIS_URL to queue them)"
fi
if ((pgbouncer)); then
  echo "  PgBouncer         127.0.0.1:${PGBOUNCER_PORT:-6432}, transaction pooling, ${PGBOUNCER_POOL_SIZE:-20} server connections (PGBOUNCER_URL)"
  echo "                    config and log: $pgb_dir"
fi
if ((cache_redis)); then
  echo "  Cache             own Redis, ${REDIS_CACHE_MAXMEMORY:-256mb} allkeys-lru (sessions, tasks: REDIS_URL)"
  echo "                    REDIS_CACHE_URL=$REDIS_CACHE_URL (for storefront cache ... commands)"
elif [[ -n "$cache_warning" ]]; then
  echo "  WARNING           $cache_warning"
fi
if ((use_nginx)); then
  echo "  Metrics           curl --unix-socket ${sockets[0]#unix:} http://localhost/metrics (not via nginx)"
else
  echo "  Metrics           $base_url/metrics (loopback or STOREFRONT_METRICS_TOKEN)"
fi
echo "  Processes         $procfile (honcho)"
echo

# honcho stops every process when one exits (a crash, a port in use), and on Ctrl-C (SIGINT to
# the whole process group, honcho included) or a SIGTERM forwarded from here.
"$VENV/bin/honcho" -f "$procfile" -d "$PWD" --no-colour start &
honcho_pid=$!
trap 'kill -TERM "$honcho_pid" 2>/dev/null || true' TERM
trap ':' INT # honcho gets the Ctrl-C itself; keep waiting for it to stop the others
status=0
wait "$honcho_pid" || status=$?
while kill -0 "$honcho_pid" 2>/dev/null; do # a trapped signal interrupted `wait`
  status=0
  wait "$honcho_pid" || status=$?
done
# honcho exits 130 after Ctrl-C and 143 after SIGTERM once everything stopped: a requested stop.
if ((status == 130 || status == 143)); then
  status=0
fi
exit "$status"
