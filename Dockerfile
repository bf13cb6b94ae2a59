# The PBFT key-value store: one image, every `pbft` command (replica, client, status, keygen, ...).
#   docker build -t pbft-kv .
#   docker run --rm pbft-kv --help
# The rocksdb package ships a prebuilt linux-x64 binary (glibc): node:20-slim needs no compiler.
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production

COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY bin ./bin
COPY src ./src

# Runs as the image's unprivileged `node` user (uid 1000, gid 1000; numeric, so that Kubernetes'
# runAsNonRoot can check it). Data lives in a volume mounted at /data, owned by that user (a new
# named volume takes the ownership of this directory). The keyring is mounted read-only: private
# key files must be mode 0600 and readable by uid 1000. The root file system may be read-only if
# /tmp stays writable (tsx caches compiled sources there).
RUN mkdir -p /data && chown 1000:1000 /data
VOLUME ["/data"]
USER 1000:1000

ENTRYPOINT ["node", "bin/pbft.mjs"]
CMD ["--help"]
