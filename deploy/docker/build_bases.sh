#!/usr/bin/env bash
# Local base images for machines that cannot reach a container registry (no `docker pull`):
#   local/debian:bookworm        a minimal Debian root file system (debootstrap), imported
#   local/python:3.11-bookworm   + Debian's Python 3.11 and venv: the project Dockerfile's base
#   local/nginx:1.22-bookworm, local/postgres:15-bookworm, local/redis:7.0-bookworm,
#   local/memcached:1.6-bookworm  the compose stack's services from Debian's packages
#                                (deploy/docker/local/*/Dockerfile), in place of the official
#                                images: NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, MEMCACHED_IMAGE
#   local/pgbouncer:1.18-bookworm  PgBouncer for compose.scaleout.yaml (PGBOUNCER_IMAGE), with
#                                deploy/pgbouncer/pgbouncer.ini.template copied into its context;
#                                the scale-out's replicas and sentinels are the postgres and
#                                redis images above (docs/deploy-compose.md, scale-out)
# Then build the project image on it:
#   docker build -f deploy/docker/Dockerfile --build-arg PYTHON_IMAGE=local/python:3.11-bookworm .
# (compose: PYTHON_IMAGE=local/python:3.11-bookworm in deploy/docker/.env, with the four above.)
#
# Needs root, debootstrap and a running Docker engine. The Debian mirror is the one apt on this
# machine already uses, read from its sources at run time (never written into a file here).
# The machine's CA bundle goes into the images (pip's PIP_CERT): HTTPS from inside containers
# may pass a proxy that only this bundle trusts. An image that exists is kept (--rebuild: again);
# a service image is built again when its directory's files changed (a label holds their digest).
set -euo pipefail

rebuild=0
[[ "${1:-}" == "--rebuild" ]] && rebuild=1
DEBIAN_IMAGE=local/debian:bookworm
PYTHON_IMAGE=local/python:3.11-bookworm
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

have() { docker image inspect "$1" >/dev/null 2>&1; }

mirror() {  # the first Debian archive apt uses here (deb822 .sources or one-line lists)
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z "$uri" ]]; then
    uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      2>/dev/null || true)
  fi
  [[ -n "$uri" ]] || { echo "build_bases: no Debian mirror found in apt's sources" >&2; exit 1; }
  echo "$uri"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ((rebuild)) || ! have "$DEBIAN_IMAGE"; then
  started=$SECONDS
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" "$(mirror)" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  # What a container never needs: downloaded packages, apt's caches, documentation, man pages,
  # translations (each image's own apt-get run removes what it adds of these too).
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/cache/apt/"*.bin \
    "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/usr/share/doc/"* \
    "$work/rootfs/usr/share/man/"* "$work/rootfs/usr/share/locale/"*
  tar -C "$work/rootfs" -c . | docker import - "$DEBIAN_IMAGE" >/dev/null
  echo "build_bases: $DEBIAN_IMAGE in $((SECONDS - started)) s"
fi

if ((rebuild)) || ! have "$PYTHON_IMAGE"; then
  started=$SECONDS
  mkdir -p "$work/python"
  cp "$CA_BUNDLE" "$work/python/host-ca.crt"
  cat >"$work/python/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
COPY host-ca.crt /usr/local/share/host-ca.crt
ENV PIP_CERT=/usr/local/share/host-ca.crt
RUN apt-get update -qq \\
    && apt-get install -y -qq --no-install-recommends python3 python3-venv python-is-python3 \\
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
DOCKERFILE
  docker build -q -t "$PYTHON_IMAGE" "$work/python" >/dev/null
  echo "build_bases: $PYTHON_IMAGE in $((SECONDS - started)) s"
fi

# The service images: one directory each under deploy/docker/local/, tagged as listed above.
local_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/local"
# pgbouncer's context is a copy with the project's one PgBouncer template added (reused, not
# duplicated: the image renders it at start).
mkdir -p "$work/pgbouncer"
cp "$local_dir/pgbouncer/Dockerfile" "$local_dir/pgbouncer/entrypoint.sh" "$work/pgbouncer/"
cp "$local_dir/../../pgbouncer/pgbouncer.ini.template" "$work/pgbouncer/"
for spec in nginx:1.22 postgres:15 redis:7.0 memcached:1.6 pgbouncer:1.18; do
  image="local/${spec}-bookworm"
  context="$local_dir/${spec%%:*}"
  [[ "${spec%%:*}" == pgbouncer ]] && context="$work/pgbouncer"
  # An image built from other files than these (an older entrypoint) is built again.
  digest=$(cat "$context"/* | sha256sum | cut -c1-16)
  built=$(docker image inspect -f '{{index .Config.Labels "storefront.context"}}' "$image" \
    2>/dev/null || true)
  if ((rebuild)) || [[ "$built" != "$digest" ]]; then
    started=$SECONDS
    docker build -q --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" --label "storefront.context=$digest" \
      -t "$image" "$context" >/dev/null
    echo "build_bases: $image in $((SECONDS - started)) s"
  fi
done
