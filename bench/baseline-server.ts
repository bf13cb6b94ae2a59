/**
 * The unreplicated baseline of the benchmark: ONE server process that does what a replica does for
 * a request minus the agreement protocol, with the same code wherever there is code to share:
 *
 *   - the replica transport (src/transport/replica-transport.ts: WebSocket, signed handshake),
 *     serving a one-replica cluster (f = 0) whose clients accept one valid signed reply;
 *   - each request's client signature verified with the node:crypto backend (cached KeyObjects),
 *     over the raw body bytes, with the same domain tag as the replicas;
 *   - execution on the same KvStore;
 *   - one loop turn at a time, like the replica shell: every frame queued since the last turn is
 *     handled, the turn's records (client, timestamp, op, result per request) go to RocksStorage in
 *     ONE batch with { sync: true }, and only then are the signed replies sent.
 *
 * Usage (started by bench/bench.ts): node --import tsx bench/baseline-server.ts '<json BaselineConfig>'
 * Prints "ready <port>" on stdout once it listens; SIGTERM stops it (exit 0).
 */
import { join } from 'node:path';
import { KvStore } from '../src/app/kv.ts';
import { concatBytes, domainTag } from '../src/core/auth.ts';
import type { ReplyMsg, RequestMsg, Signed } from '../src/core/messages.ts';
import { encodeCbor } from '../src/codec/cbor.ts';
import { decodeFrame, encodeBody, encodeSignedFrame } from '../src/codec/messages.ts';
import { loadPrivateKey, keyFileName } from '../src/crypto/keyring.ts';
import { createSigner, createVerifier, hotPathBackend } from '../src/crypto/index.ts';
import { RocksStorage } from '../src/storage/rocksdb.ts';
import type { WriteOp } from '../src/storage/types.ts';
import { createReplicaTransport } from '../src/transport/replica-transport.ts';
import type { Principal } from '../src/transport/types.ts';
import { clusterFromJson, type ClusterJson } from './lib/keys.ts';

export interface BaselineConfig {
  /** A one-replica cluster (f = 0); replica 0 is this server. */
  cluster: ClusterJson;
  /** Directory holding replica-0.key. */
  keysDir: string;
  dataDir: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as BaselineConfig;
const cluster = clusterFromJson(config.cluster);
const secret = loadPrivateKey(join(config.keysDir, keyFileName('replica', 0))).secretKey;
// The replicas' ed25519 backend (libsodium where it loads; PBFT_CRYPTO chooses another).
const backend = hotPathBackend();
const signer = createSigner(secret, backend);
const verifier = createVerifier(backend);
const requestTag = domainTag(cluster.clusterId, 'request');
const replyTag = domainTag(cluster.clusterId, 'reply');
const clientKeys = new Map<number, Uint8Array>(cluster.clients.map((c) => [c.id, c.publicKey]));
const lastTimestamp = new Map<number, number>();
const kv = new KvStore();
const storage = new RocksStorage({ path: config.dataDir });
const transport = createReplicaTransport({ cluster, selfId: 0, signer, verifier });

let queue: Array<{ from: Principal; frame: Uint8Array }> = [];
let turnRunning = false;
let turnScheduled = false;
let recordSeq = 0;

function schedule(): void {
  if (turnRunning || turnScheduled || queue.length === 0) return;
  turnScheduled = true;
  setImmediate(() => {
    turnScheduled = false;
    void turn();
  });
}

async function turn(): Promise<void> {
  turnRunning = true;
  const frames = queue;
  queue = [];
  const writes: WriteOp[] = [];
  const replies: Array<{ client: number; frame: Uint8Array }> = [];
  for (const { from, frame } of frames) {
    const decoded = decodeFrame(frame);
    if (!decoded.ok || decoded.value.kind !== 'signed' || decoded.value.signed.msg.type !== 'request') continue;
    const req = decoded.value.signed as Signed<RequestMsg>;
    const m = req.msg;
    if (from.kind !== 'client' || from.id !== m.client) continue;
    const last = lastTimestamp.get(m.client) ?? 0;
    if (m.timestamp <= last) continue; // a retransmission or a stale request
    const key = clientKeys.get(m.client);
    if (key === undefined || !verifier.verify(key, concatBytes(requestTag, req.body), req.sig)) continue;
    lastTimestamp.set(m.client, m.timestamp);
    const result = kv.execute(m.op, { seq: ++recordSeq, client: m.client, timestamp: m.timestamp, timeMs: Date.now() });
    writes.push({ type: 'put', key: `r/${m.client}`, value: encodeCbor([m.timestamp, m.op, result]) });
    const msg: ReplyMsg = { type: 'reply', view: 0, client: m.client, timestamp: m.timestamp, replica: 0, result };
    const body = encodeBody(msg);
    const sig = signer.sign(concatBytes(replyTag, body));
    replies.push({ client: m.client, frame: encodeSignedFrame({ msg, body, sig }) });
  }
  try {
    if (writes.length > 0) await storage.write(writes, { sync: true });
  } catch (err) {
    process.stderr.write(`baseline: synced write failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  for (const r of replies) transport.sendToClient(r.client, r.frame);
  turnRunning = false;
  schedule();
}

transport.onFrame((from, frame) => {
  queue.push({ from, frame });
  schedule();
});

await storage.open();
await transport.start();
process.stdout.write(`ready ${new URL(cluster.replicas[0]!.url).port}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(1), 5_000).unref();
  void transport
    .stop()
    .then(() => storage.close())
    .finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Do not outlive the benchmark that started this process (e.g. when it was killed with SIGKILL).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1_000).unref();
