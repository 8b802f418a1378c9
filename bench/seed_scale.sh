#!/usr/bin/env bash
# Scale check for `storefront seed`: 100k products, 1M orders (~2.5M lines) and 10k users into a
# fresh PostgreSQL database must load in under LIMIT_SECONDS (default 300).
#
#   bench/seed_scale.sh                 # database storefront_bench on 127.0.0.1:5432, user postgres
#   KEEP_DB=1 bench/seed_scale.sh       # keep the database afterwards (e.g. for load tests)
#   BENCH_DB=x PGHOST=... PGPORT=... PGUSER=... bench/seed_scale.sh
set -euo pipefail

cd "$(dirname "$0")/.."

BENCH_DB=${BENCH_DB:-storefront_bench}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
LIMIT_SECONDS=${LIMIT_SECONDS:-300}
PRODUCTS=${PRODUCTS:-100000}
ORDERS=${ORDERS:-1000000}
USERS=${USERS:-10000}
STOREFRONT=${STOREFRONT:-.venv/bin/storefront}

export PGHOST PGPORT PGUSER
export DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${BENCH_DB}"
# Placeholder images go to a throwaway media directory, not the developer's var/media.
MEDIA_ROOT=$(mktemp -d)
export MEDIA_ROOT

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

cleanup() {
    rm -rf "$MEDIA_ROOT"
    if [[ "${KEEP_DB:-0}" != 1 ]]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"${BENCH_DB}\" WITH (FORCE)" || true
    else
        echo "Kept database ${BENCH_DB} (DATABASE_URL=${DATABASE_URL})"
    fi
}
trap cleanup EXIT

psql_admin -c "DROP DATABASE IF EXISTS \"${BENCH_DB}\" WITH (FORCE)"
psql_admin -c "CREATE DATABASE \"${BENCH_DB}\""
"$STOREFRONT" migrate --verbosity 0

echo "Seeding ${PRODUCTS} products, ${ORDERS} orders, ${USERS} users into ${BENCH_DB}..."
started=$(date +%s.%N)
"$STOREFRONT" seed --products "$PRODUCTS" --orders "$ORDERS" --users "$USERS" --seed 1
finished=$(date +%s.%N)
elapsed=$(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')

psql -X -d "$BENCH_DB" -c "
    SELECT 'catalog_category' AS table_name, count(*) AS rows FROM catalog_category
    UNION ALL SELECT 'catalog_product', count(*) FROM catalog_product
    UNION ALL SELECT 'accounts_user', count(*) FROM accounts_user
    UNION ALL SELECT 'orders_order', count(*) FROM orders_order
    UNION ALL SELECT 'orders_orderline', count(*) FROM orders_orderline"

echo "seed elapsed: ${elapsed} s (limit ${LIMIT_SECONDS} s)"
if awk -v e="$elapsed" -v l="$LIMIT_SECONDS" 'BEGIN { exit !(e > l) }'; then
    echo "FAIL: seeding took longer than ${LIMIT_SECONDS} s" >&2
    exit 1
fi
echo "OK"
