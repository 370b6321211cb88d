# syntax=docker/dockerfile:1
# mirra: the node agent image. Node 24 runs the TypeScript sources directly
# (type stripping), so there is no build step; the final image has only the
# production dependencies, cmd/ and internal/ (no tests).

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# node@24 and the other dev dependencies are not installed; no install scripts are needed.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY cmd ./cmd
COPY internal ./internal
RUN find cmd internal -name '*.test.ts' -delete
# The agent reads containerd's socket and content directory (hostPath mounts), which needs root.
ENTRYPOINT ["node", "/app/cmd/mirra.ts"]
CMD ["registry"]
