#!/bin/sh
# `redis-server ARGS`: listen on every address of the container with protected mode off (only
# the compose network reaches it; no port is published), then ARGS. A replica is the same with
# `--replicaof HOST PORT` among ARGS.
#
# `sentinel [ARGS]`: a Redis Sentinel on port 26379 (compose.scaleout.yaml). Its configuration
# file must be writable (a sentinel rewrites it with what it learns: replicas, peers, the
# current master after a failover), so it is generated here, in /data, on first start only
# (a restarted sentinel keeps what it knew) from:
#   SENTINEL_MASTER_NAME (storefront), SENTINEL_PRIMARY_HOST (required), SENTINEL_PRIMARY_PORT
#   (6379), SENTINEL_QUORUM (2), SENTINEL_DOWN_AFTER_MS (5000), SENTINEL_FAILOVER_TIMEOUT_MS
#   (60000), SENTINEL_ANNOUNCE_HOSTNAME (this sentinel's name on the network; empty: its address)
# Host names, not addresses: compose's addresses change when a container is recreated.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  set -- redis-server --bind '* -::*' --protected-mode no "$@"
elif [ "${1:-}" = sentinel ]; then
  shift
  config=/data/sentinel.conf
  name="${SENTINEL_MASTER_NAME:-storefront}"
  if [ ! -s "$config" ]; then
    : "${SENTINEL_PRIMARY_HOST:?SENTINEL_PRIMARY_HOST must be set}"
    {
      echo "port 26379"
      echo "bind * -::*"
      echo "protected-mode no"
      echo "dir /data"
      echo "sentinel resolve-hostnames yes"
      echo "sentinel announce-hostnames yes"
      if [ -n "${SENTINEL_ANNOUNCE_HOSTNAME:-}" ]; then
        echo "sentinel announce-ip $SENTINEL_ANNOUNCE_HOSTNAME"
      fi
      echo "sentinel monitor $name $SENTINEL_PRIMARY_HOST ${SENTINEL_PRIMARY_PORT:-6379} ${SENTINEL_QUORUM:-2}"
      echo "sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-5000}"
      echo "sentinel failover-timeout $name ${SENTINEL_FAILOVER_TIMEOUT_MS:-60000}"
      echo "sentinel parallel-syncs $name 1"
    } >"$config"
    echo "redis-entrypoint: wrote $config (master $name at $SENTINEL_PRIMARY_HOST)" >&2
  fi
  set -- redis-server "$config" --sentinel "$@"
fi
exec "$@"
