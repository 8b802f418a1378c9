#!/bin/sh
# certbot's deploy hook: copy the renewed certificate chain and key ($RENEWED_LINEAGE, or the
# only lineage under /etc/letsencrypt/live when run by hand) to the directory nginx reads them
# from, then tell nginx's master process to reload: it rereads them, finishes open requests on
# the old workers, no connection is refused. The master is PID 1 of the PID namespace this
# container shares with nginx (compose.yaml: `pid: service:nginx`).
set -eu
certs="${CERTS_DIR:-/etc/nginx/certs}"
lineage="${RENEWED_LINEAGE:-}"
if [ -z "$lineage" ]; then
  set -- /etc/letsencrypt/live/*/fullchain.pem
  if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
    echo "certbot-deploy-hook: no single lineage under /etc/letsencrypt/live" >&2
    exit 1
  fi
  lineage=$(dirname "$1")
fi
umask 077
for name in fullchain.pem privkey.pem; do
  cp -L "$lineage/$name" "$certs/.$name.new"
  mv -f "$certs/.$name.new" "$certs/$name"
done
[ "$(cat /proc/1/comm 2>/dev/null)" = nginx ] || {
  echo "certbot-deploy-hook: PID 1 is not nginx (is pid: service:nginx set?)" >&2
  exit 1
}
kill -HUP 1
echo "certbot-deploy-hook: installed $lineage, nginx reloads" >&2
