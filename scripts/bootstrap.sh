#!/usr/bin/env bash
# Create .venv (if missing) and install Storefront into it, editable.
#
#   scripts/bootstrap.sh          the application only   (what `make run` needs)
#   scripts/bootstrap.sh --dev    plus the dev extras     (what `make test` and `make lint` need)
#
# A dev install in a git checkout also installs the pre-commit hook (.pre-commit-config.yaml)
# into .git/hooks, once: an existing .git/hooks/pre-commit is left alone.
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

install_git_hook() {  # the pre-commit hook, in a git checkout that has no hook of its own yet
  local top hooks
  # Only when this directory is the top of a git work tree (not an export inside another repo).
  top="$(git rev-parse --show-toplevel 2>/dev/null)" || return 0
  [[ "$top" -ef . ]] || return 0
  hooks="$(git rev-parse --git-path hooks)"
  [[ -e "$hooks/pre-commit" || -n "$(git config --get core.hooksPath)" ]] && return 0
  "$VENV/bin/pre-commit" install >/dev/null
  echo "==> installed the pre-commit hook (ruff, shellcheck, hadolint, gixy; see .pre-commit-config.yaml)"
}

if [[ -n "$extras" ]]; then
  target=".[dev]"
  installed() { up_to_date "$stamp_dev"; }
else
  target="."
  # A dev install includes the application.
  installed() { up_to_date "$stamp_base" || up_to_date "$stamp_dev"; }
fi

if ! installed; then
  echo "==> installing storefront ($target) into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target"
  echo "$want" >"$stamp_base"
  if [[ -n "$extras" ]]; then
    echo "$want" >"$stamp_dev"
  else
    # Installing without extras may have changed shared dependencies: re-check dev next time.
    rm -f "$stamp_dev"
  fi
fi

if [[ -n "$extras" ]] && command -v git >/dev/null 2>&1; then
  install_git_hook
fi
