#!/bin/sh
# `redis-server ARGS`: listen on every address of the container with protected mode off (only
# the compose network reaches it; no port is published), then ARGS.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  set -- redis-server --bind '* -::*' --protected-mode no "$@"
fi
exec "$@"
