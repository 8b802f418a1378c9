#!/usr/bin/env bash
# Container entrypoint: check the environment, wait for the database, prepare, then serve.
#
#   entrypoint.sh              validate, wait for the DB, publish static files, migrate, exec gunicorn
#   entrypoint.sh CMD ARGS...  the same preparation, then exec CMD instead (e.g. `storefront shell`)
#   entrypoint.sh prepare      the same preparation, then exit (compose's one-off migrate service)
#
# STOREFRONT_DB_WAIT_SECONDS (default 60) bounds the wait for the database; STOREFRONT_MIGRATE=0
# and STOREFRONT_COLLECTSTATIC=0 skip those steps (compose's one-off `migrate` service does both
# once, before any web replica starts).
# STOREFRONT_ENV defaults to production here (the image sets it too): a deployment that forgot
# it runs the secure settings, not dev's; set STOREFRONT_ENV=dev to run anything else.
set -euo pipefail

export STOREFRONT_ENV="${STOREFRONT_ENV:-production}"

# The repository root (/app in the image): deploy/gunicorn.conf.py is found relative to it.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

fail() {
  echo "entrypoint: error: $*" >&2
  exit 64
}

# settings.py refuses some environments (ImproperlyConfigured, e.g. DJANGO_DEBUG=true in
# production): say why at once, instead of the database wait below retrying the same error.
check_settings() {
  local output
  if ! output=$(python -c 'import storefront.settings' 2>&1); then
    fail "the settings refuse this environment: $(tail -n 1 <<<"$output")"
  fi
}

validate_env() {
  if [[ "$STOREFRONT_ENV" != "production" ]]; then
    return 0
  fi
  local name missing=()
  for name in SECRET_KEY DATABASE_URL ALLOWED_HOSTS; do
    if [[ -z "${!name:-}" ]]; then
      missing+=("$name")
    fi
  done
  if ((${#missing[@]})); then
    fail "STOREFRONT_ENV=production needs ${missing[*]} set (see deploy/docker/env.example)"
  fi
  if [[ "$DATABASE_URL" == sqlite* ]]; then
    fail "DATABASE_URL must name PostgreSQL in production, not SQLite"
  fi
}

wait_for_database() {
  local limit="${STOREFRONT_DB_WAIT_SECONDS:-60}"
  [[ "$limit" =~ ^[0-9]+$ ]] || fail "STOREFRONT_DB_WAIT_SECONDS must be a whole number, not '$limit'"
  local deadline=$((SECONDS + limit)) attempt=1
  until python - <<'PY' 2>/dev/null; do
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
django.setup()
from django.db import connection

connection.ensure_connection()
PY
    echo "entrypoint: waiting for the database (attempt ${attempt} failed)" >&2
    if ((SECONDS >= deadline)); then
      fail "database not reachable after ${limit}s (${attempt} attempts); check DATABASE_URL"
    fi
    attempt=$((attempt + 1))
    sleep 1
  done
  echo "entrypoint: database is reachable" >&2
}

# The image's collected static files (/opt/static, built with the code) into STATIC_ROOT, the
# volume nginx serves: copied only when the release's manifest differs from the volume's, and
# without deleting anything, so pages a previous release rendered still find their hashed files
# during a rolling update. The manifest goes last: a copy cut short is done again next start.
# Outside the image (no /opt/static), collectstatic does the same.
IMAGE_STATIC=/opt/static
MANIFEST=staticfiles.json
publish_static() {
  local root="${STATIC_ROOT:?STATIC_ROOT is not set}"
  if [[ ! -d "$IMAGE_STATIC" ]]; then
    storefront collectstatic --noinput --verbosity 0
    return 0
  fi
  if cmp -s "$IMAGE_STATIC/$MANIFEST" "$root/$MANIFEST"; then
    echo "entrypoint: static files in $root are this release's" >&2
    return 0
  fi
  mkdir -p "$root"
  tar -C "$IMAGE_STATIC" --exclude "./$MANIFEST" -cf - . | tar -C "$root" -xf - --no-same-owner
  cp "$IMAGE_STATIC/$MANIFEST" "$root/$MANIFEST.tmp"
  mv -f "$root/$MANIFEST.tmp" "$root/$MANIFEST"
  echo "entrypoint: static files copied into $root" >&2
}

validate_env
check_settings
wait_for_database
if [[ "${STOREFRONT_COLLECTSTATIC:-1}" != "0" ]]; then
  publish_static
fi
if [[ "${STOREFRONT_MIGRATE:-1}" != "0" ]]; then
  storefront migrate --noinput
fi

if [[ "${1:-}" == prepare ]]; then
  echo "entrypoint: prepared" >&2
  exit 0
fi
if (($#)); then
  exec "$@"
fi
exec gunicorn -c deploy/gunicorn.conf.py storefront.wsgi
