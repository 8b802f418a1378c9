#!/usr/bin/env bash
# Create .venv (if missing) and install Storefront into it, editable.
#
#   scripts/bootstrap.sh          the application only   (what `make run` needs)
#   scripts/bootstrap.sh --dev    plus the dev extras     (what `make test` and `make lint` need)
#
# pip runs again only when pyproject.toml changed since the last install: a stamp file in
# .venv records the hash of the pyproject.toml that was installed (a hash, not a timestamp, so
# a `git checkout` that touches the file without changing it costs nothing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

extras=""
case "${1:-}" in
  "") ;;
  --dev) extras="dev" ;;
  *) echo "usage: $0 [--dev]" >&2; exit 2 ;;
esac

if [[ ! -x "$VENV/bin/python" ]]; then
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python 3.11 or newer (or set PYTHON=...)" >&2
    exit 1
  fi
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Storefront needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
  fi
  echo "==> creating $VENV with $("$PYTHON" -V 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
stamp_base="$VENV/.storefront-installed"
stamp_dev="$VENV/.storefront-installed-dev"

up_to_date() {  # $1: stamp file
  [[ -f "$1" && "$(cat "$1")" == "$want" ]]
}

if [[ -n "$extras" ]]; then
  up_to_date "$stamp_dev" && exit 0
  target=".[dev]"
else
  # A dev install includes the application.
  { up_to_date "$stamp_base" || up_to_date "$stamp_dev"; } && exit 0
  target="."
fi

echo "==> installing storefront ($target) into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target"
echo "$want" >"$stamp_base"
if [[ -n "$extras" ]]; then
  echo "$want" >"$stamp_dev"
else
  # Installing without extras may have changed shared dependencies: re-check dev next time.
  rm -f "$stamp_dev"
fi
