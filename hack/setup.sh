#!/usr/bin/env bash
# Installs what `npm start`, `npm test` and the benchmarks need on a fresh
# machine: the npm packages (Node 24 among them, at node_modules/.bin/node)
# and Debian's containerd 1.6, docker-registry, skopeo, nginx, openssl and wrk
# when missing; then containerd 2.1 and 1.7 beside them (hack/containerd.sh);
# and the sendfile addon (gcc when missing) for the agents the tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/node ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci empties node_modules first: through a symlink, that is another
  # checkout's packages (it happened to a copy linked to the main one).
  if [ -L node_modules ]; then
    echo "setup: node_modules is a symlink to $(readlink node_modules) and its packages are missing or older than package-lock.json; npm ci would empty the link's target: run npm ci there, or replace the link with a directory" >&2
    exit 1
  fi
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# wrk: the client of bench:serve's manifest series (tests/bench/serve.ts).
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# openssl: certificates for the TLS tests of the Kubernetes client (tests/support/pki.ts).
[ -x /usr/bin/openssl ] || missing+=(openssl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# A C compiler for the sendfile addon (hack/build-native.ts).
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # Debian's packages try to start their services; there is no init system here and we run them ourselves.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

bash hack/containerd.sh

# The agent's sendfile addon, for the agents the tests run from the sources
# (tests/support/agent.ts); `npm run build` puts its own beside the bundle.
if [ ! -f build/native/mirra-sendfile.node ] || [ native/sendfile.c -nt build/native/mirra-sendfile.node ]; then
  node_modules/.bin/node hack/build-native.ts build/native >/dev/null
fi
