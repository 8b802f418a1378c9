#!/usr/bin/env bash
# Zero-downtime release of Storefront on a systemd server (see deploy/systemd/).
#
#   deploy/scripts/deploy.sh            run from the checkout to release, as root
#
# 1. copy the checkout to $DEPLOY_ROOT/releases/<timestamp>, build its .venv (pip install),
#    write its release.env: STOREFRONT_RELEASE=<release id>, the release Sentry tags events
#    with, which the systemd units read from /opt/storefront/current/release.env
# 2. collectstatic, migrate, `gunicorn --check-config` with the server's environment file
# 3. switch $DEPLOY_ROOT/current to the new release atomically (rename of a symlink)
# 4. restart gunicorn: storefront.socket keeps listening, so no connection is refused, and
#    gunicorn finishes in-flight requests before it stops
# 5. health gate: $DEPLOY_HEALTH_URL (/readyz) must answer 2xx within the retries; otherwise
#    current goes back to the previous release, gunicorn is restarted again, and the script
#    exits 1
#
# Migrations run before the switch while the old release still serves: they must be backwards
# compatible with it (add columns first, drop them a release later).
#
# Environment (defaults in brackets):
#   DEPLOY_ROOT             [/opt/storefront] holds releases/ and the current symlink
#   DEPLOY_SOURCE           [this checkout] directory copied into the release
#   DEPLOY_RELEASE_NAME     [UTC timestamp YYYYmmddHHMMSS]
#   DEPLOY_RELEASE_ID       [git commit of DEPLOY_SOURCE, plus "-dirty" with uncommitted
#                           changes; without git: DEPLOY_RELEASE_NAME] its STOREFRONT_RELEASE
#   DEPLOY_ENV_FILE         [/etc/storefront/env] settings for collectstatic/migrate/check-config
#   DEPLOY_VENV             [] reuse this virtualenv instead of building one (tests, hotfixes)
#   DEPLOY_PYTHON           [python3] interpreter for the release's virtualenv
#   DEPLOY_RELOAD_CMD       [systemctl restart storefront.service] run through bash -c
#   DEPLOY_HEALTH_URL       [http://localhost/readyz]
#   DEPLOY_HEALTH_SOCKET    [/run/storefront/gunicorn.sock] unix socket for the probe; empty: TCP
#   DEPLOY_HEALTH_RETRIES   [15] probes before giving up
#   DEPLOY_HEALTH_INTERVAL  [2] seconds between probes
#   DEPLOY_KEEP_RELEASES    [5] releases kept (current and previous are never removed)
set -euo pipefail

DEPLOY_ROOT="${DEPLOY_ROOT:-/opt/storefront}"
DEPLOY_SOURCE="${DEPLOY_SOURCE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
DEPLOY_RELEASE_NAME="${DEPLOY_RELEASE_NAME:-$(date -u +%Y%m%d%H%M%S)}"
DEPLOY_RELEASE_ID="${DEPLOY_RELEASE_ID:-}"
DEPLOY_ENV_FILE="${DEPLOY_ENV_FILE:-/etc/storefront/env}"
DEPLOY_VENV="${DEPLOY_VENV:-}"
DEPLOY_PYTHON="${DEPLOY_PYTHON:-python3}"
DEPLOY_RELOAD_CMD="${DEPLOY_RELOAD_CMD:-systemctl restart storefront.service}"
DEPLOY_HEALTH_URL="${DEPLOY_HEALTH_URL:-http://localhost/readyz}"
DEPLOY_HEALTH_SOCKET="${DEPLOY_HEALTH_SOCKET-/run/storefront/gunicorn.sock}"
DEPLOY_HEALTH_RETRIES="${DEPLOY_HEALTH_RETRIES:-15}"
DEPLOY_HEALTH_INTERVAL="${DEPLOY_HEALTH_INTERVAL:-2}"
DEPLOY_KEEP_RELEASES="${DEPLOY_KEEP_RELEASES:-5}"

releases="$DEPLOY_ROOT/releases"
current="$DEPLOY_ROOT/current"
release="$releases/$DEPLOY_RELEASE_NAME"

log() { printf 'deploy: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

for number in DEPLOY_HEALTH_RETRIES DEPLOY_KEEP_RELEASES; do
  [[ "${!number}" =~ ^[1-9][0-9]*$ ]] || die "$number must be a positive whole number"
done
[[ "$DEPLOY_RELEASE_NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad DEPLOY_RELEASE_NAME '$DEPLOY_RELEASE_NAME'"
[[ -f "$DEPLOY_SOURCE/pyproject.toml" ]] || die "DEPLOY_SOURCE '$DEPLOY_SOURCE' is not a Storefront checkout"

source_commit() {  # the checkout's commit, -dirty with uncommitted changes; fails without git
  # safe.directory: root deploying a checkout someone else owns.
  local git=(git -c "safe.directory=$DEPLOY_SOURCE" --no-optional-locks -C "$DEPLOY_SOURCE")
  local commit
  [[ -e "$DEPLOY_SOURCE/.git" ]] && command -v git >/dev/null || return 1
  commit="$("${git[@]}" rev-parse --verify HEAD 2>/dev/null)" || return 1
  if [[ -n "$("${git[@]}" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit+="-dirty"
  fi
  printf '%s\n' "$commit"
}
if [[ -z "$DEPLOY_RELEASE_ID" ]]; then
  DEPLOY_RELEASE_ID="$(source_commit)" || DEPLOY_RELEASE_ID="$DEPLOY_RELEASE_NAME"
fi
# Sentry refuses slashes, whitespace and names over 200 characters; the id is also a line of an
# environment file, so nothing that would need quoting there.
[[ "$DEPLOY_RELEASE_ID" =~ ^[A-Za-z0-9@+._:-]{1,200}$ && ! "$DEPLOY_RELEASE_ID" =~ ^\.\.?$ ]] ||
  die "bad DEPLOY_RELEASE_ID '$DEPLOY_RELEASE_ID'"
[[ -r "$DEPLOY_ENV_FILE" ]] || die "environment file '$DEPLOY_ENV_FILE' not readable"
command -v curl >/dev/null || die "curl is needed for the health gate"

mkdir -p "$releases"
# One deploy at a time: a second one waits for no one and stops here.
exec 9>"$DEPLOY_ROOT/.deploy.lock"
flock -n 9 || die "another deploy holds $DEPLOY_ROOT/.deploy.lock"

[[ ! -e "$release" ]] || die "release $release exists already"
previous=""
if [[ -L "$current" ]]; then
  previous="$(readlink "$current")"
fi

switch_to() {  # point current at $1 by renaming a fresh symlink over it (atomic)
  ln -sfn "$1" "$current.next"
  mv -T "$current.next" "$current"
}

reload() {
  log "reloading: $DEPLOY_RELOAD_CMD"
  bash -c "$DEPLOY_RELOAD_CMD"
}

healthy() {
  local attempt curl_args=(--fail --silent --show-error --max-time 5 --output /dev/null)
  if [[ -n "$DEPLOY_HEALTH_SOCKET" ]]; then
    curl_args+=(--unix-socket "$DEPLOY_HEALTH_SOCKET")
  fi
  for ((attempt = 1; attempt <= DEPLOY_HEALTH_RETRIES; attempt++)); do
    if curl "${curl_args[@]}" "$DEPLOY_HEALTH_URL"; then
      log "health gate passed ($DEPLOY_HEALTH_URL, attempt $attempt)"
      return 0
    fi
    log "health gate: attempt $attempt/$DEPLOY_HEALTH_RETRIES failed"
    if ((attempt < DEPLOY_HEALTH_RETRIES)); then
      sleep "$DEPLOY_HEALTH_INTERVAL"
    fi
  done
  return 1
}

log "release $release from $DEPLOY_SOURCE"
mkdir "$release"
tar -C "$DEPLOY_SOURCE" -cf - \
  --exclude=./.git --exclude=./.venv --exclude=./var --exclude=./node_modules \
  --exclude=./test-output --exclude=./.pytest_cache --exclude=./.ruff_cache \
  --exclude='*.egg-info' --exclude='__pycache__' . | tar -C "$release" -xf -

if [[ -n "$DEPLOY_VENV" ]]; then
  [[ -x "$DEPLOY_VENV/bin/gunicorn" ]] || die "DEPLOY_VENV '$DEPLOY_VENV' has no gunicorn"
  log "reusing virtualenv $DEPLOY_VENV"
  ln -s "$DEPLOY_VENV" "$release/.venv"
else
  log "building $release/.venv"
  "$DEPLOY_PYTHON" -m venv "$release/.venv"
  "$release/.venv/bin/pip" install --quiet --no-cache-dir "$release"
fi

# The release's own settings: the units read this file after /etc/storefront/env (it wins), and
# through the current symlink, so a switch or a rollback brings the right release id along.
cat >"$release/release.env" <<EOF
# Written by deploy/scripts/deploy.sh for release $DEPLOY_RELEASE_NAME; read by the systemd units.
STOREFRONT_RELEASE=$DEPLOY_RELEASE_ID
EOF
log "release id (STOREFRONT_RELEASE): $DEPLOY_RELEASE_ID"

(
  cd "$release"
  set -a
  # shellcheck source=/dev/null
  . "$DEPLOY_ENV_FILE"
  # shellcheck source=/dev/null
  . "$release/release.env"
  set +a
  log "collectstatic"
  .venv/bin/storefront collectstatic --noinput --verbosity 0
  log "migrate"
  .venv/bin/storefront migrate --noinput
  log "gunicorn --check-config"
  .venv/bin/gunicorn --check-config -c deploy/gunicorn.conf.py storefront.wsgi
)

switch_to "$release"
log "current -> $release (previous: ${previous:-none})"
reload

if ! healthy; then
  if [[ -z "$previous" ]]; then
    die "health gate failed and there is no previous release to return to"
  fi
  log "health gate failed: rolling back to $previous"
  switch_to "$previous"
  reload
  die "rolled back to $previous; $release left in place for inspection"
fi

# Prune the oldest releases, keeping DEPLOY_KEEP_RELEASES and never current or previous.
mapfile -t all < <(find "$releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
for ((i = 0; i < ${#all[@]} - DEPLOY_KEEP_RELEASES; i++)); do
  old="$releases/${all[i]}"
  if [[ "$old" != "$release" && "$old" != "$previous" ]]; then
    log "removing old release $old"
    rm -rf "$old"
  fi
done
log "released $DEPLOY_RELEASE_NAME"
