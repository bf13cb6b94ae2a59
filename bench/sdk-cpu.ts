/**
 * The client SDK's own CPU per request, in one process and without a network: C PbftClients (real
 * signing and verification, node:crypto) run closed loops of puts against four in-process fake
 * replicas that answer every request as the real ones do under load (one signed REPLY-BATCH per
 * replica per round, each client getting its Merkle path; bench/bench.ts's cluster run averages ~20
 * requests per batch). The fake replicas' work (decoding requests, building trees, signing batches,
 * encoding reply frames) is timed with process.cpuUsage around it and subtracted; what remains is the
 * SDK's: signing the request, encoding it, decoding the 4 replies, judging them, verifying f+1 of
 * them, timers, promises, GC. The WebSocket transport and the kernel's socket work are NOT in it (the
 * cluster run of bench/bench.ts counts those). Meant for A/B comparisons of SDK changes: CPU time,
 * so the machine's other load moves it less than it moves wall-clock figures.
 *
 * The clients share the SDK's cache of valid signatures (src/crypto/verify-cache.ts): the clients of
 * one batch check each replica's batch signature once between them. A round answers every request
 * that arrived in it in batches of --batch requests (default 0: one batch for all, where nearly no
 * verification is left); --batch 1 gives every request a batch of its own, so each client verifies
 * f+1 signatures as a process with one client does.
 *
 * The fake replicas honour the repliers a request names (RequestMsg.repliers): with the SDK's default
 * `--replies quorum` each client gets f+1 = 2 reply frames per request, with `--replies all` four.
 *
 *   node --import tsx bench/sdk-cpu.ts [--clients 64] [--seconds 5] [--rounds 3] [--batch 0] [--replies quorum|all]
 */
import nodeCrypto, { randomBytes } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import type { RepliesMode } from '../src/client/repliers.ts';
import { PbftClient } from '../src/client/client.ts';
import { encodeOp } from '../src/app/kv-ops.ts';
import { concatBytes, domainTag } from '../src/core/auth.ts';
import type { ClusterConfig } from '../src/core/cluster.ts';
import type { BatchedReply, ReplyBatchMsg, RequestMsg, Signed } from '../src/core/messages.ts';
import { buildReplyTree, replyLeaf } from '../src/core/replytree.ts';
import { decodeFrame, encodeBatchedReplyFrame, encodeBody } from '../src/codec/messages.ts';
import { createNodeSigner, nodeDerivePublicKey, sha256 } from '../src/crypto/node.ts';
import type { ClientTransport } from '../src/transport/client-transport.ts';
import { intArg } from './lib/args.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number, min = 1): number => intArg('sdk-cpu', args, name, fallback, min);
const CLIENTS = arg('--clients', 64);
const SECONDS = arg('--seconds', 5);
const ROUNDS = arg('--rounds', 3);
const BATCH = arg('--batch', 0, 0);
const REPLIES = ((): RepliesMode => {
  const i = args.indexOf('--replies');
  if (i < 0) return 'quorum';
  const v = args[i + 1];
  if (v !== 'quorum' && v !== 'all') {
    process.stderr.write(`sdk-cpu: --replies must be quorum or all, got ${String(v)}\n`);
    process.exit(2);
  }
  return v;
})();
const N = 4;

const replicaSecrets = Array.from({ length: N }, () => new Uint8Array(randomBytes(32)));
const clientSecrets = Array.from({ length: CLIENTS }, () => new Uint8Array(randomBytes(32)));
const cluster: ClusterConfig = {
  clusterId: 'bench-sdk-cpu',
  f: 1,
  replicas: replicaSecrets.map((s, id) => ({ id, url: `ws://127.0.0.1:${7001 + id}`, publicKey: nodeDerivePublicKey(s) })),
  clients: clientSecrets.map((s, id) => ({ id, publicKey: nodeDerivePublicKey(s) })),
};
const replicaSigners = replicaSecrets.map((s) => createNodeSigner(s));
const batchTag = domainTag(cluster.clusterId, 'replybatch');
const RESULT = Uint8Array.of(0x82, 0x01, 0xf6);

/** CPU microseconds the fake replicas used (subtracted from the process's). */
let replicaCpuUs = 0;
const view = 0;
let seq = 0;
const handlers = new Map<number, (replica: number, frame: Uint8Array) => void>();
let queued: Uint8Array[] = [];
let scheduled = false;

function cpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

/** One round: every replica answers every request that arrived since the last one. */
function round(): void {
  scheduled = false;
  // Replica by replica, as the frames of one batch arrive: each client accepts on the second.
  for (const o of answer()) handlers.get(o.client)?.(o.replica, o.frame);
}

/** The fake replicas' work of a round (timed, and subtracted from the process's CPU). */
function answer(): Array<{ client: number; replica: number; frame: Uint8Array }> {
  const start = cpuUs();
  inAnswer = true;
  const frames = queued;
  queued = [];
  const requests: RequestMsg[] = [];
  for (const bytes of frames) {
    const d = decodeFrame(bytes);
    if (d.ok && d.value.kind === 'signed' && d.value.signed.msg.type === 'request') requests.push(d.value.signed.msg as RequestMsg);
  }
  const out: Array<{ client: number; replica: number; frame: Uint8Array }> = [];
  const size = BATCH > 0 ? BATCH : Math.max(1, requests.length);
  for (let from = 0; from < requests.length; from += size) out.push(...answerBatch(requests.slice(from, from + size)));
  inAnswer = false;
  replicaCpuUs += cpuUs() - start;
  return out;
}

/** The four fake replicas' REPLY-BATCHes for one batch of requests. */
function answerBatch(requests: RequestMsg[]): Array<{ client: number; replica: number; frame: Uint8Array }> {
  const out: Array<{ client: number; replica: number; frame: Uint8Array }> = [];
  seq++;
  const leaves = requests.map((r) => replyLeaf(sha256, r.client, r.timestamp, RESULT));
  const tree = buildReplyTree(sha256, leaves);
  for (let replica = 0; replica < N; replica++) {
    const msg: ReplyBatchMsg = { type: 'replybatch', view, replica, seq, count: leaves.length, root: tree.root };
    const body = encodeBody(msg);
    const batch: Signed<ReplyBatchMsg> = { msg, body, sig: replicaSigners[replica]!.sign(concatBytes(batchTag, body)) };
    requests.forEach((r, index) => {
      if (r.repliers !== undefined && !r.repliers.includes(replica)) return;
      const reply: BatchedReply = { msg: { type: 'reply', view, replica, client: r.client, timestamp: r.timestamp, result: RESULT }, batch, index, path: tree.paths[index]! };
      out.push({ client: r.client, replica, frame: encodeBatchedReplyFrame(reply) });
    });
  }
  return out;
}

function fakeTransport(clientId: number): ClientTransport {
  const receive = (frame: Uint8Array): void => {
    queued.push(frame);
    if (!scheduled) {
      scheduled = true;
      setImmediate(round);
    }
  };
  return {
    send: (replica, frame) => {
      if (replica === 0) receive(frame);
      return true;
    },
    broadcast: (frame) => {
      receive(frame);
      return N;
    },
    onFrame: (h) => void handlers.set(clientId, h),
    onConnected: () => undefined,
    connectedReplicas: () => [0, 1, 2, 3],
    setReplicas: () => undefined,
    waitConnected: async () => undefined,
    close: async () => undefined,
  };
}

/**
 * The SDK's signature operations (node:crypto sign and verify outside the fake replicas' rounds),
 * counted; their CPU is priced by timing the same operations alone right after each window (timing
 * each call would cost more than some of what is measured: process.cpuUsage is a system call).
 */
let verifies = 0;
let signs = 0;
let inAnswer = false;
const signOriginal = nodeCrypto.sign;
const verifyOriginal = nodeCrypto.verify;
(nodeCrypto as { sign: unknown }).sign = (...a: Parameters<typeof signOriginal>) => {
  if (!inAnswer) signs++;
  return signOriginal(...a);
};
(nodeCrypto as { verify: unknown }).verify = (...a: Parameters<typeof verifyOriginal>) => {
  verifies++;
  return verifyOriginal(...a);
};
syncBuiltinESMExports();

/** CPU microseconds of one node:crypto ed25519 sign and one verify of a batch-sized message, timed alone. */
function priceSignatures(): { signUs: number; verifyUs: number } {
  const key = nodeCrypto.createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(replicaSecrets[0]!)]), format: 'der', type: 'pkcs8' });
  const publicKey = nodeCrypto.createPublicKey(key);
  const data = Array.from({ length: 64 }, (_, i) => new Uint8Array(96).fill(i));
  const sigs = data.map((d) => signOriginal(null, d, key));
  const time = (op: (i: number) => void): number => {
    for (let i = 0; i < 100; i++) op(i);
    const t = cpuUs();
    let calls = 0;
    const end = performance.now() + 300;
    while (performance.now() < end) for (let k = 0; k < 20; k++) op(calls++);
    return (cpuUs() - t) / calls;
  };
  return { signUs: time((i) => signOriginal(null, data[i & 63]!, key)), verifyUs: time((i) => verifyOriginal(null, data[i & 63]!, publicKey, sigs[i & 63]!)) };
}

async function main(): Promise<void> {
  const clients = await Promise.all(
    clientSecrets.map((secretKey, id) => PbftClient.connect({ cluster, key: { id, secretKey }, crypto: 'node', replies: REPLIES, createTransport: () => fakeTransport(id) })),
  );
  const value = new Uint8Array(16).fill(7);
  const ops = clients.map((c) => Array.from({ length: 256 }, (_, i) => encodeOp({ type: 'put', key: `c${c.clientId}k${String(i).padStart(12, '0')}`, value })));
  let running = true;
  let completed = 0;
  const loops = clients.map(async (c, k) => {
    let i = 0;
    while (running) {
      await c.invoke(ops[k]![i++ % 256]!);
      completed++;
    }
  });
  const window = async (seconds: number): Promise<{ sdkUs: number; signatureUs: number; replicaUs: number; requests: number; verifies: number; signs: number }> => {
    const c0 = completed;
    const v0 = verifies;
    const s0 = signs;
    const r0 = replicaCpuUs;
    const t0 = cpuUs();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const t1 = cpuUs();
    const requests = completed - c0;
    const replicaUs = replicaCpuUs - r0;
    const v = (verifies - v0) / requests;
    const sg = (signs - s0) / requests;
    const price = priceSignatures();
    return { sdkUs: (t1 - t0 - replicaUs) / requests, signatureUs: sg * price.signUs + v * price.verifyUs, replicaUs: replicaUs / requests, requests, verifies: v, signs: sg };
  };
  await window(Math.min(3, SECONDS)); // warm-up: JIT
  for (let round = 0; round < ROUNDS; round++) {
    const w = await window(SECONDS);
    process.stdout.write(
      `sdk ${w.sdkUs.toFixed(1)} us/req = signatures ${w.signatureUs.toFixed(1)} (${w.signs.toFixed(2)} signs + ${w.verifies.toFixed(2)} verifies, priced alone) + other ${(w.sdkUs - w.signatureUs).toFixed(1)}` +
        `  (fake replicas ${w.replicaUs.toFixed(1)} us/req subtracted, ${w.requests} requests)\n`,
    );
  }
  running = false;
  await Promise.all(loops);
  await Promise.all(clients.map((c) => c.close()));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
