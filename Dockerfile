# syntax=docker/dockerfile:1
# mirra: the node agent image. The final image runs one JavaScript file,
# dist/mirra.mjs, bundled and minified by esbuild from the TypeScript sources
# (`npm run build`, hack/build.ts), with its sendfile addon beside it
# (dist/mirra-sendfile.node): no node_modules, no sources, no tests.
# Bundled, the agent idles at 74 MiB of RSS against 91 MiB for the same code
# as compiled modules (hack/build.ts has the numbers); Node's type stripping
# would keep a TypeScript compiler (WebAssembly) in every agent, about 29 MiB.

# The bundler: all dependencies (esbuild is a dev dependency); no install
# scripts, so the node@24 package stays inert and the image's own Node 24 runs
# the build script (type stripping) and esbuild's binary package.
FROM node:24-bookworm-slim AS build
# A C compiler for the sendfile addon beside the bundle (hack/build-native.ts,
# native/sendfile.c): built here, against this image's glibc, which the
# runtime stage shares.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY hack/build.ts ./hack/build.ts
COPY hack/build-native.ts ./hack/build-native.ts
COPY native ./native
COPY cmd ./cmd
COPY internal ./internal
RUN node hack/build.ts dist

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
# The heap bounds the chart sets too (values.yaml nodeOptions; the chart's env
# overrides this): the agent stays well under the chart's 192Mi memory limit
# wherever the image runs; --expose-gc lets it collect its heap down when idle
# (internal/memory/idle-collect.ts).
ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=128 --expose-gc"
# glibc gives freed C heap back at once (values.yaml mallocTrimThreshold says why).
ENV MALLOC_TRIM_THRESHOLD_=0
WORKDIR /app
# npm and corepack are not needed at run time: a smaller image with less to patch.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
COPY --from=build /app/dist ./dist
RUN node /app/dist/mirra.mjs help >/dev/null \
    && node -e "require('/app/dist/mirra-sendfile.node')"
# The agent reads containerd's socket and content directory (hostPath mounts), which needs root.
ENTRYPOINT ["node", "/app/dist/mirra.mjs"]
CMD ["registry"]

# skaffold's sync profile (skaffold.yaml, `skaffold dev -p sync`): `mirra
# registry` runs under `node --watch`, so the .ts files skaffold copies into the
# running container restart the agent in place; other commands (the configure
# init container) run once as usual. Not for production.
FROM runtime AS dev
ENV NODE_ENV=development
# The sources have no addon beside them: the runtime stage's, beside its bundle.
ENV MIRRA_SENDFILE=/app/dist/mirra-sendfile.node
# The sources import their dependencies (the bundle of the runtime stage has them inside).
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY cmd ./cmd
COPY internal ./internal
RUN find cmd internal -name '*.test.ts' -delete
ENTRYPOINT ["/bin/sh", "-c", "if [ \"$1\" = registry ]; then exec node --watch /app/cmd/mirra.ts \"$@\"; fi; exec node /app/cmd/mirra.ts \"$@\"", "mirra"]

# The default target: the production image.
FROM runtime
