#!/usr/bin/env bash
# `make run`: install, migrate, seed on first run, collect static files, then serve Storefront.
#
# Embedded defaults: SQLite and a file cache under var/ (STOREFRONT_VAR_DIR). With DATABASE_URL
# and REDIS_URL in the environment, settings.py uses PostgreSQL and Redis instead.
#
# With nginx on PATH (and GUNICORN_BIND unset): the config from deploy/nginx/ is rendered into
# var/nginx/ (scripts/render_nginx.py), a self-signed certificate made once into var/tls/, and
# INSTANCES gunicorns (default 1) serve unix sockets var/run/gunicorn-N.sock behind nginx on
# NGINX_LISTEN_HTTP (127.0.0.1:8000) and NGINX_LISTEN_HTTPS (127.0.0.1:8443). This shell
# supervises them: Ctrl-C or SIGTERM stops them all, and so does any one of them exiting.
#
# Without nginx (or with GUNICORN_BIND set): gunicorn alone on GUNICORN_BIND (127.0.0.1:8000)
# replaces this shell (exec), so Ctrl-C and SIGTERM reach it directly.
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

scripts/bootstrap.sh

# SQLite creates its file but not the directory that holds it.
mkdir -p "${STOREFRONT_VAR_DIR:-$PWD/var}"

storefront="$VENV/bin/storefront"
echo "==> migrating the database"
"$storefront" migrate --noinput
echo "==> seeding demo data (only into an empty database)"
"$storefront" seed --if-empty
echo "==> collecting static files"
"$storefront" collectstatic --noinput --verbosity 0

case "$GUNICORN_BIND" in
  unix:*) base_url="$GUNICORN_BIND" ;;
  *) base_url="http://$GUNICORN_BIND" ;;
esac

with_port() {  # "8000" -> "127.0.0.1:8000"; "host:port" unchanged
  case "$1" in *:*) echo "$1" ;; *) echo "127.0.0.1:$1" ;; esac
}

if ((use_nginx)); then
  export NGINX_LISTEN_HTTP="${NGINX_LISTEN_HTTP:-127.0.0.1:8000}"
  export NGINX_LISTEN_HTTPS="${NGINX_LISTEN_HTTPS:-127.0.0.1:8443}"
  instances="${INSTANCES:-1}"
  mkdir -p "$var_dir/run"
  sockets=()
  for ((i = 1; i <= instances; i++)); do
    sockets+=("unix:$var_dir/run/gunicorn-$i.sock")
  done
  export NGINX_UPSTREAM_SOCKETS="${sockets[*]}"
  mapfile -t roots < <("$VENV/bin/python" -c '
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
django.setup()
from django.conf import settings
print(settings.STATIC_ROOT)
print(settings.MEDIA_ROOT)')
  export NGINX_STATIC_ROOT="${NGINX_STATIC_ROOT:-${roots[0]}}"
  export NGINX_MEDIA_ROOT="${NGINX_MEDIA_ROOT:-${roots[1]}}"
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

"$VENV/bin/python" - "$base_url" <<'PY'
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
django.setup()

from storefront.orders.seeding import DEMO_CUSTOMER, DEMO_STAFF  # noqa: E402

base = sys.argv[1].rstrip("/")
print(
    f"""
Storefront is starting. Press Ctrl-C to stop it.

  Shop              {base}/
  Staff dashboard   {base}/staff/dashboard/
  Admin             {base}/admin/
  API docs          {base}/api/docs/

  Customer login    {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}
  Staff login       {DEMO_STAFF[0]} / {DEMO_STAFF[1]}
""",
    flush=True,
)
PY

if ! ((use_nginx)); then
  exec "$VENV/bin/gunicorn" -c deploy/gunicorn.conf.py storefront.wsgi
fi

echo "  HTTPS (self-signed) https://$(with_port "$NGINX_LISTEN_HTTPS")/"
echo "  nginx logs        $var_dir/nginx/logs/"
echo

pids=()
stop_all() {
  trap - INT TERM
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  wait || true
}
trap 'stop_all; exit 0' INT TERM

for socket in "${sockets[@]}"; do
  rm -f "${socket#unix:}"
  GUNICORN_BIND="$socket" "$VENV/bin/gunicorn" -c deploy/gunicorn.conf.py storefront.wsgi &
  pids+=($!)
done
nginx "${nginx_args[@]}" -g 'daemon off;' &
pids+=($!)

# Any process exiting on its own (a crash, a port in use) stops the rest.
status=0
wait -n || status=$?
echo "==> a process exited (status $status): stopping the others" >&2
stop_all
exit "$status"
