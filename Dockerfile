# syntax=docker/dockerfile:1
# mirra: the node agent image. Node 24 runs the TypeScript sources directly
# (type stripping), so there is no build step; the final image has only the
# production dependencies, cmd/ and internal/ (no tests, no dev dependencies).

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# node@24 (a dev dependency) and the other dev dependencies are not installed; no install scripts are needed.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
# The heap bounds the chart sets too (values.yaml nodeOptions; the chart's env
# overrides this): the agent stays well under a 256Mi memory limit wherever the
# image runs.
ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=128"
WORKDIR /app
# npm and corepack are not needed at run time: a smaller image with less to patch.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY cmd ./cmd
COPY internal ./internal
RUN find cmd internal -name '*.test.ts' -delete && node /app/cmd/mirra.ts help >/dev/null
# The agent reads containerd's socket and content directory (hostPath mounts), which needs root.
ENTRYPOINT ["node", "/app/cmd/mirra.ts"]
CMD ["registry"]

# skaffold's sync profile (skaffold.yaml, `skaffold dev -p sync`): `mirra
# registry` runs under `node --watch`, so the .ts files skaffold copies into the
# running container restart the agent in place; other commands (the configure
# init container) run once as usual. Not for production.
FROM runtime AS dev
ENV NODE_ENV=development
ENTRYPOINT ["/bin/sh", "-c", "if [ \"$1\" = registry ]; then exec node --watch /app/cmd/mirra.ts \"$@\"; fi; exec node /app/cmd/mirra.ts \"$@\"", "mirra"]

# The default target: the production image.
FROM runtime
