#!/bin/sh
# Render /etc/nginx/templates/**/*.template into /etc/nginx/conf.d/ (same relative path, without
# .template), substituting only the environment variables whose names NGINX_ENVSUBST_FILTER
# matches (all of them when unset), as the official image's 20-envsubst-on-templates.sh does;
# then run the command (nginx).
set -eu

templates=/etc/nginx/templates
output=/etc/nginx/conf.d
filter="${NGINX_ENVSUBST_FILTER:-}"

if [ "${1:-}" = nginx ] && [ -d "$templates" ]; then
  names=$(env | cut -d= -f1 | grep -E "${filter:-.}" || true)
  defined=""
  for name in $names; do
    defined="$defined \${$name}"
  done
  find "$templates" -follow -type f -name '*.template' | while read -r template; do
    relative="${template#"$templates"/}"
    target="$output/${relative%.template}"
    mkdir -p "$(dirname "$target")"
    envsubst "$defined" <"$template" >"$target"
    echo "nginx-entrypoint: rendered $target" >&2
  done
fi
exec "$@"
