# syntax=docker/dockerfile:1.7
# The platform services: one multi-arch image (linux/amd64, linux/arm64); the service is chosen by
# the first argument or SERVICE (scripts/docker-entrypoint.sh):
#   ingress | forwarder | waker | janitor | pool-keeper | dashboard | admin-api     and `ztm` for kubectl exec.
# Build: docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/agentic-tenancy .
# (scripts/build-and-deploy.sh does this and rolls the Deployments out.)
# Exact tags (a base that moves under the same name is a different image): Node 20.20.2 is what the
# suite runs on; uWebSockets.js has native builds for Node 20 only (docs/operations.md "Node versions").
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# TypeScript → JavaScript with source maps. Architecture-independent: runs on the build host.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS compile
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY lib ./lib
COPY services ./services
COPY agent ./agent
COPY cli ./cli
RUN npx tsc -p tsconfig.build.json

# Production dependencies for the target architecture (native modules: uWebSockets.js ships
# prebuilt binaries; the others build here when no prebuild matches, hence the toolchain).
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=compile /src/dist ./dist
COPY package.json ./
COPY scripts/docker-entrypoint.sh ./docker-entrypoint.sh
# `kubectl exec deployment/janitor -- ztm …` (ztm's cluster mode) finds ztm on PATH.
RUN printf '#!/bin/sh\nexec /app/docker-entrypoint.sh ztm "$@"\n' > /usr/local/bin/ztm \
 && chmod 0755 /usr/local/bin/ztm /app/docker-entrypoint.sh
ENV NODE_ENV=production \
    RUNTIME=kubernetes \
    LOG_LEVEL=info \
    INGRESS_PORT=8080 \
    ADMIN_PORT=9090 \
    DASHBOARD_PORT=3001
# The `node` user of the base image, by number so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080 9090 3001 8090
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/app/docker-entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD []
