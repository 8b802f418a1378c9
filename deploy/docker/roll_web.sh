#!/usr/bin/env bash
# Rolling replacement of the web replicas with the image compose now names, one at a time,
# without refusing a request (docs/deploy-compose.md, "Rolling update"):
#
#   docker compose -f deploy/docker/compose.yaml build web        # the new release's image
#   deploy/docker/roll_web.sh [COMPOSE ARGS...]                    # e.g. -p storefront
#
# 1. The one-off `migrate` service runs with the new image: migrations (they must suit the
#    running release too: add before you remove) and the new static files, published next to
#    the old ones (pages the old replicas render still find theirs).
# 2. For each old replica: start one new replica beside it, wait until Docker says it is
#    healthy, then stop the old one (SIGTERM: gunicorn closes its socket at once, so nginx moves
#    on to another replica, and finishes the requests it holds) and remove it.
# nginx needs no reload: it resolves `web` again every 2 s (compose.yaml, NGINX_RESOLVER).
#
# COMPOSE (default: docker-compose, else `docker compose`) and the compose file
# (-f deploy/docker/compose.yaml unless COMPOSE ARGS give one) can be overridden;
# ROLL_HEALTH_TIMEOUT (seconds, default 120) bounds the wait for each new replica;
# ROLL_STOP_TIMEOUT (seconds, default 30) is how long an old replica may finish its requests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
health_timeout="${ROLL_HEALTH_TIMEOUT:-120}"
stop_timeout="${ROLL_STOP_TIMEOUT:-30}"

if [[ -n "${COMPOSE:-}" ]]; then
  read -r -a compose <<<"$COMPOSE"
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  compose=(docker compose)
fi
args=("$@")
if [[ " ${args[*]} " != *" -f "* && " ${args[*]} " != *" --file "* ]]; then
  args=(-f "$here/compose.yaml" "${args[@]}")
fi
c() { "${compose[@]}" "${args[@]}" "$@"; }

log() { printf 'roll_web: %s\n' "$*" >&2; }

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }

wait_healthy() {  # wait_healthy CONTAINER: until healthy; fails if it dies or times out
  local id=$1 deadline=$((SECONDS + health_timeout)) status
  while :; do
    status=$(health "$id")
    [[ "$status" == healthy ]] && return 0
    if [[ "$(docker inspect -f '{{.State.Running}}' "$id")" != true ]]; then
      log "new replica ${id:0:12} stopped before it was healthy"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "new replica ${id:0:12} not healthy after ${health_timeout}s ($status)"
      return 1
    fi
    sleep 1
  done
}

mapfile -t old < <(c ps -q web)
((${#old[@]})) || { log "no web replica is running: use up -d instead"; exit 1; }
count=${#old[@]}
log "replacing ${count} replica(s)"

started=$SECONDS
c run --rm -T migrate >&2
log "migrate: done"

for id in "${old[@]}"; do
  before=$(c ps -q web | sort)
  c up -d --no-deps --no-recreate --scale "web=$((count + 1))" web >&2
  new=$(comm -13 <(echo "$before") <(c ps -q web | sort) | head -n 1)
  [[ -n "$new" ]] || { log "compose started no new replica"; exit 1; }
  if ! wait_healthy "$new"; then
    log "rolling back: removing ${new:0:12}; the old replicas keep serving"
    docker stop -t "$stop_timeout" "$new" >/dev/null
    docker rm "$new" >/dev/null
    exit 1
  fi
  docker stop -t "$stop_timeout" "$id" >/dev/null
  docker rm "$id" >/dev/null
  log "replaced ${id:0:12} with ${new:0:12}"
done
log "done: ${count} replica(s) in $((SECONDS - started)) s"
