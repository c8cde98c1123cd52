# syntax=docker/dockerfile:1
# The raftkv server image. scripts/image-build.sh reads this file and performs the same steps into a
# scratch directory (there is no Docker engine where the tests run), and test/k8s/image.test.ts starts
# the result, so keep to what that script understands: FROM ... AS, WORKDIR, COPY [--from=STAGE]
# [--chown=...], RUN [--mount=type=cache,...] npm ..., RUN for base-image setup (skipped there), ENV,
# USER, EXPOSE, VOLUME, ENTRYPOINT in exec form.

# Stage 1: compile the TypeScript sources (src/ and the generated gen/) into dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script would build before the sources are copied; the build is the
# explicit step below.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY gen ./gen
RUN npm run build

# Stage 2: production dependencies, the compiled code and the launcher; no sources, no dev tools.
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund --ignore-scripts
COPY bin ./bin
COPY --from=build /app/dist ./dist
# The data directory's mount point, owned by the runtime user so that a fresh volume mounted there
# (docker run -v, or Kubernetes with fsGroup) is writable. Nothing else is written at run time: the
# image works with a read-only root filesystem.
RUN mkdir -p /var/lib/raftkv && chown 10001:10001 /var/lib/raftkv
# A numeric user, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# bin/raftkv.js runs dist/ because the image has no src/ to be newer than it.
ENV RAFTKV_DATA_DIR=/var/lib/raftkv/data \
    RAFTKV_LISTEN_CLIENT=0.0.0.0:2379 \
    RAFTKV_LISTEN_PEER=0.0.0.0:2380
EXPOSE 2379 2380
VOLUME ["/var/lib/raftkv"]
ENTRYPOINT ["node", "/app/bin/raftkv.js", "serve"]
