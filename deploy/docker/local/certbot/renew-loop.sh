#!/bin/sh
# Every CERTBOT_RENEW_INTERVAL seconds (default 12 h), `certbot renew` through the webroot:
# certificates within 30 days of expiry are renewed and certbot-deploy-hook runs for each.
# With no certificate yet it does nothing; the first one comes from
#   docker compose run --rm certbot certbot certonly --webroot -w /var/www/acme -d example.com
# and is installed with `docker compose run --rm certbot certbot-deploy-hook` (docs/deploy-compose.md).
set -eu
interval="${CERTBOT_RENEW_INTERVAL:-43200}"
case "$interval" in
  '' | *[!0-9]*) echo "certbot-renew-loop: CERTBOT_RENEW_INTERVAL must be seconds" >&2; exit 64 ;;
esac
trap 'exit 0' TERM INT
while :; do
  certbot renew --non-interactive --webroot --webroot-path /var/www/acme \
    --deploy-hook /usr/local/bin/certbot-deploy-hook || echo "certbot-renew-loop: renew failed" >&2
  sleep "$interval" &
  wait $!
done
