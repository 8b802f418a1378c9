#!/usr/bin/env bash
# `make run`: install, migrate, seed on first run, collect static files, then serve Storefront.
#
# Embedded defaults: SQLite and a file cache under var/ (STOREFRONT_VAR_DIR). With DATABASE_URL
# and REDIS_URL in the environment, settings.py uses PostgreSQL and Redis instead.
# Gunicorn replaces this shell (exec), so Ctrl-C and SIGTERM reach it directly and stop it and
# its workers. Every GUNICORN_* variable (deploy/gunicorn.conf.py) applies.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
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

exec "$VENV/bin/gunicorn" -c deploy/gunicorn.conf.py storefront.wsgi
