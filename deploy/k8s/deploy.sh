#!/usr/bin/env bash
# Roll out Storefront to a cluster: the migration Job first, the Deployments only after it
# completed (docs/kubernetes.md, "Apply").
#
#   deploy/k8s/deploy.sh deploy/k8s/overlays/prod        # needs overlays/prod/secrets.env
#
# 1. render the overlay once (every step applies the same objects);
# 2. apply what the Job needs: namespace, ConfigMap, Secret, ServiceAccount, NetworkPolicies
#    (label storefront.io/apply-phase=prepare);
# 3. delete the previous release's Job (a Job's pod template is immutable), apply this one and
#    wait until it completes; stop with its logs if it fails;
# 4. apply everything else; wait for the Deployments to finish rolling.
#
# STOREFRONT_MIGRATE_TIMEOUT (seconds, default 1800) bounds the wait in step 3.
set -euo pipefail

overlay="${1:?usage: deploy.sh OVERLAY_DIR (e.g. deploy/k8s/overlays/prod)}"
timeout="${STOREFRONT_MIGRATE_TIMEOUT:-1800}"

rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$overlay" >"$rendered"
# The overlay's `namespace:` (every object of the overlay is placed there).
namespace="$(sed -n 's/^namespace: *//p' "$overlay/kustomization.yaml")"
[[ -n "$namespace" ]] || { echo "deploy: no namespace: line in $overlay/kustomization.yaml" >&2; exit 64; }

kubectl apply -f "$rendered" -l storefront.io/apply-phase=prepare

kubectl -n "$namespace" delete job storefront-migrate --ignore-not-found --wait=true
kubectl apply -f "$rendered" -l app.kubernetes.io/component=migrate
deadline=$((SECONDS + timeout))
while :; do
  state="$(kubectl -n "$namespace" get job storefront-migrate \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')"
  case "$state" in
    *Complete*) echo "deploy: migrations done" >&2; break ;;
    *Failed*)
      kubectl -n "$namespace" logs job/storefront-migrate --tail=50 >&2 || true
      echo "deploy: the migration Job failed; nothing else was rolled out" >&2
      exit 1 ;;
  esac
  if ((SECONDS >= deadline)); then
    echo "deploy: the migration Job did not finish within ${timeout}s" >&2
    exit 1
  fi
  sleep 5
done

# Everything else; `!=` also selects objects without the label.
kubectl apply -f "$rendered" -l 'app.kubernetes.io/component!=migrate'
for deployment in storefront-web storefront-worker storefront-beat; do
  kubectl -n "$namespace" rollout status "deployment/$deployment" --timeout=10m
done
