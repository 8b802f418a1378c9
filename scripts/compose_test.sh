#!/usr/bin/env bash
# make compose-test: build the images and run the compose stack for real (tests/compose).
#
# Needs root and Debian's docker.io, docker-compose and debootstrap (.ci/run installs them).
# Starts the Docker engine when none is running, and then stops it again at the end, with the
# firewall rules and the bridge it made (network tests that run later expect neither); an engine
# that was already running is left alone. Builds the local base images (no registry here:
# deploy/docker/build_bases.sh, kept between runs), then pytest runs tests/compose, which
# brings its own compose project up and down. Extra pytest arguments: PYTEST_ARGS.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
log_dir=test-output/compose
mkdir -p "$log_dir"

for tool in dockerd docker docker-compose debootstrap iptables; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "compose-test: $tool not found (apt-get install docker.io docker-compose debootstrap)" >&2
    exit 1
  fi
done

started_engine=0
forward_policy=""
stop_engine() {
  ((started_engine)) || return 0
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
  fi
  # What dockerd added to the firewall and the network: its chains and rules (other rules are
  # kept), the FORWARD policy as it was, and the docker0 bridge.
  for table in filter nat; do
    iptables-save -t "$table" | grep -v -i docker | iptables-restore 2>/dev/null || true
  done
  if [[ -n "$forward_policy" ]]; then
    iptables -P FORWARD "$forward_policy" 2>/dev/null || true
  fi
  ip link delete docker0 2>/dev/null || true
  echo "compose-test: stopped the Docker engine it had started"
}
trap stop_engine EXIT

if ! docker info >/dev/null 2>&1; then
  forward_policy=$(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3; exit}')
  echo "compose-test: starting the Docker engine (log: $log_dir/dockerd.log)"
  dockerd >"$log_dir/dockerd.log" 2>&1 &
  started_engine=1
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "compose-test: dockerd did not start" >&2; exit 1; }
fi

bash deploy/docker/build_bases.sh
# shellcheck disable=SC2086  # PYTEST_ARGS: several words on purpose
STOREFRONT_COMPOSE_TEST=1 STOREFRONT_ENV=test "$VENV/bin/pytest" tests/compose -m compose \
  ${PYTEST_ARGS:-}
