#!/usr/bin/env bash
# Compiles cmd/mirra.ts and what it imports (no tests, no test kits) to plain
# JavaScript in dist/ (or the directory given), with the .proto files the
# containerd client loads at run time. The image runs the agent from it: Node's type stripping keeps a
# TypeScript compiler (WebAssembly) in every process, about 29 MiB of RSS for
# the agent. Development, tests and the demo run the .ts files directly.
# Uses whatever `node` is first in PATH (npm scripts: Node 24 from node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
rm -rf "$out"
node node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir "$out"
cp -r internal/containerd/proto "$out/internal/containerd/proto"
