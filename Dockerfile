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

# Data lives in a volume mounted here; the keyring is mounted read-only at /keys.
VOLUME ["/data"]

ENTRYPOINT ["node", "bin/pbft.mjs"]
CMD ["--help"]
