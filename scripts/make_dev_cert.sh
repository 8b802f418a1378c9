#!/usr/bin/env bash
# Self-signed certificate for localhost (make run, stack tests): var/tls/dev-{cert,key}.pem.
#   scripts/make_dev_cert.sh [DIR]   (default var/tls; does nothing when both files exist)
set -euo pipefail
dir="${1:-$(dirname "${BASH_SOURCE[0]}")/../var/tls}"
mkdir -p "$dir"
if [[ -s "$dir/dev-cert.pem" && -s "$dir/dev-key.pem" ]]; then
  exit 0
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -keyout "$dir/dev-key.pem" -out "$dir/dev-cert.pem" 2>/dev/null
chmod 600 "$dir/dev-key.pem"
echo "==> self-signed certificate written to $dir/dev-cert.pem"
