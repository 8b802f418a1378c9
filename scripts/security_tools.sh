#!/usr/bin/env bash
# Install what `make security` runs: Debian's testssl.sh, slowhttptest and systemd-analyze (apt,
# only when missing), and the Python scanners (security/requirements.txt, plus httpobs without
# its pinned server dependencies) into .venv-security. Idempotent: a stamp of the requirements'
# hash skips pip when nothing changed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
SECURITY_VENV="${SECURITY_VENV:-.venv-security}"
HTTPOBS_VERSION="0.9.3"

missing=()
command -v testssl >/dev/null 2>&1 || command -v testssl.sh >/dev/null 2>&1 || missing+=(testssl.sh)
command -v slowhttptest >/dev/null 2>&1 || missing+=(slowhttptest)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing ${missing[*]}: run as root or apt-get install them" >&2
    exit 1
  fi
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x "$SECURITY_VENV/bin/python" ]]; then
  echo "==> creating $SECURITY_VENV"
  "$PYTHON" -m venv "$SECURITY_VENV"
fi
want="$(cat security/requirements.txt "$0" | sha256sum | cut -d' ' -f1)"
stamp="$SECURITY_VENV/.installed"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  echo "==> installing the scanners into $SECURITY_VENV"
  "$SECURITY_VENV/bin/pip" install -q --disable-pip-version-check -r security/requirements.txt
  "$SECURITY_VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
    "httpobs==$HTTPOBS_VERSION"
  echo "$want" >"$stamp"
fi
