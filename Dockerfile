# The PBFT key-value store: one image, every `pbft` command (replica, client, status, keygen, ...).
#   docker build -t pbft-kv .
#   docker run --rm pbft-kv --help
# The rocksdb package ships a prebuilt linux-x64 binary (glibc): node:20-slim needs no compiler.

# Build: dist/ from the sources (tsc is a dev dependency), then the production dependencies only.
# rocksdb is an optional peer dependency of the package (clients do not need it) and a dev
# dependency of the repository; a replica image needs it, so it becomes a dependency here before
# the dev dependencies are pruned.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm pkg set "dependencies.rocksdb=$(npm pkg get devDependencies.rocksdb | tr -d '"')" \
 && npm pkg delete devDependencies.rocksdb \
 && npm prune --omit=dev

FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
# jemalloc for every process of the image (README, "Performance": about 7% more requests per second
# than glibc's malloc, which Node calls for every socket read). Linked at one path on any
# architecture; `pbft replica` reports it in GET /status (memory.malloc). To run on glibc's malloc:
# docker run -e LD_PRELOAD= ...
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2 | head -n 1)" /usr/local/lib/libjemalloc.so.2
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# bin/pbft.mjs runs dist/ (there is no src/ in the image).
COPY bin ./bin
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs

# Runs as the image's unprivileged `node` user (uid 1000, gid 1000; numeric, so that Kubernetes'
# runAsNonRoot can check it). Data lives in a volume mounted at /data, owned by that user (a new
# named volume takes the ownership of this directory). The keyring is mounted read-only: private
# key files must be mode 0600 and readable by uid 1000. The root file system may be read-only.
RUN mkdir -p /data && chown 1000:1000 /data
VOLUME ["/data"]
USER 1000:1000

# Healthy while the replica in the container answers GET /status as a replica (and as replica
# $PBFT_ID when that is set): plain node, no TypeScript loader, so a check costs little. It asks
# 127.0.0.1:7001 (every replica in the compose files listens there), the port of $PBFT_LISTEN, or
# $PBFT_HEALTH_URL. Containers that run other commands (client, status) are short-lived and unaffected;
# Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s/.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["node", "deploy/healthcheck.mjs"]

ENTRYPOINT ["node", "bin/pbft.mjs"]
CMD ["--help"]
