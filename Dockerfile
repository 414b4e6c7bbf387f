# syntax=docker/dockerfile:1
# One image for every role: `worker` (default), `api`, `simulator`, or `cli <args>`.
#   docker build -t ccfs-export .
#   docker run --rm --env-file deploy/compose.env ccfs-export worker
# Debian, not Alpine: the Temporal SDK's native core bridge has no musl build.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Production dependencies only (tsx is one: the services run TypeScript without a build step).
# `npm install` rather than `npm ci`: npm 11 leaves @swc/core's platform packages out of the lock file
# and then refuses `npm ci`; with the lock file present, `npm install` installs the locked versions.
RUN npm install --omit=dev --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

FROM deps AS build
COPY . .
# Bundles the workflows once (dist/workflow-bundle.js): a forbidden import fails the image build,
# and workers start without bundling.
RUN npm run build

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# Memory settings of every role, the worker's above all (worker/memory-settings.ts, README "Worker
# memory"): V8 would size its heaps for the host's RAM and collect lazily, glibc would give each Temporal
# core thread a malloc arena; with these a worker's 10-year backfill stays under 250 MB RSS. Override
# NODE_OPTIONS / MALLOC_ARENA_MAX per container to change them.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-semi-space-size=1 --max-old-space-size=128" \
    MALLOC_ARENA_MAX=2 \
    WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js \
    OUTPUT_DIR=/data/exports \
    LOG_FORMAT=json \
    API_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app /app
# The `node` user (uid 1000) of the base image owns nothing but the output volume.
RUN mkdir -p /data/exports \
 && chown -R node:node /data \
 && chmod 0755 /app/deploy/docker-entrypoint.sh
USER node
VOLUME ["/data"]
# API, worker metrics, simulator.
EXPOSE 3000 9464 8480
# tini is PID 1: it forwards SIGTERM to Node (graceful shutdown) and reaps children.
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/docker-entrypoint.sh"]
CMD ["worker"]
