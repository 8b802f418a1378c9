#!/usr/bin/env bash
# `make vendor`: refresh storefront/static/vendor/ from the versions pinned in package.json.
#
# Pages never load a library from a CDN: npm fetches it into a throwaway directory and the one
# file the pages use is copied in under a versioned name. The `//# sourceMappingURL` comment
# is removed because the .map file is not vendored and Django's manifest storage fails on a
# reference to a missing file during collectstatic.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

vendor_dir="storefront/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp package.json "$work/"
(cd "$work" && npm install --no-package-lock --no-save --ignore-scripts --no-audit --no-fund)

mkdir -p "$vendor_dir"

# Chart.js (staff and customer dashboard charts).
chart_version="$(node -p 'require(process.argv[1]).version' "$work/node_modules/chart.js/package.json")"
chart_target="$vendor_dir/chart-$chart_version.umd.min.js"
sed '/^\/\/# sourceMappingURL=/d' "$work/node_modules/chart.js/dist/chart.umd.min.js" >"$chart_target"
if grep -q 'sourceMappingURL=' "$chart_target"; then
  echo "error: $chart_target still references a source map; adjust the sed above" >&2
  exit 1
fi
echo "vendored $chart_target"

stale="$(find "$vendor_dir" -name 'chart-*.umd.min.js' ! -path "$chart_target" -printf '  %p\n')"
if [[ -n "$stale" ]]; then
  echo "note: older copies remain; point the templates at chart-$chart_version, then delete:"
  echo "$stale"
fi
