/**
 * The crypto floor: the requests/s this machine could reach doing nothing but the signature work
 * every request needs at minimum, measured with the code the clients and replicas run:
 *
 *   1. the client signs its request       RequestSigner.sign (encode body, domain tag, sign)
 *   2. each of the n replicas verifies it  Verifier.verify over tag || raw body
 *   3. the client verifies f+1 replies      RequestSigner.verifyReply
 *
 * with the ed25519 backend the replicas and the SDK use (src/crypto/index.ts hotPathBackend:
 * libsodium where it loads; `backend` or PBFT_CRYPTO chooses another).
 *
 *   floor requests/s = cores x 1 s / (sign + n x verify + (f+1) x verifyReply)
 *
 * Since 2026-12-05 only 2f+1 replicas verify each request (src/core/quorum.ts,
 * skipsClientSignatures); `byReplicasChecking` is that minimum, printed beside the floor.
 *
 * Run alone: node --import tsx bench/crypto-floor.ts [seconds per operation, default 1]
 */
import { availableParallelism } from 'node:os';
import { encodeOp } from '../src/app/kv-ops.ts';
import { RequestSigner } from '../src/client/request.ts';
import { concatBytes, domainTag } from '../src/core/auth.ts';
import { faultsOf, quorumFor } from '../src/core/quorum.ts';
import type { ClusterConfig } from '../src/core/cluster.ts';
import type { ReplyMsg, RequestMsg, Signed } from '../src/core/messages.ts';
import { encodeBody } from '../src/codec/messages.ts';
import { createSigner, createVerifier, hotPathBackend } from '../src/crypto/index.ts';
import { nodeDerivePublicKey } from '../src/crypto/node.ts';
import { randomBytes } from 'node:crypto';

export interface CryptoFloor {
  /** The ed25519 implementation measured. */
  backend: 'sodium' | 'node';
  cores: number;
  /** Microseconds per operation, one core. */
  signRequestUs: number;
  verifyRequestUs: number;
  verifyReplyUs: number;
  /** Per request CPU microseconds and floor requests/s, by replica count. */
  byReplicas: Record<number, { cpuUsPerRequest: number; requestsPerSecond: number }>;
  /**
   * The same with the request verified by only the replicas that check client signatures (n minus
   * quorum.ts signatureSkippers: 2f+1 for n = 3f+1), what replicas have done since 2026-12-05.
   * Information beside the floor above, which issue 15's target is judged against.
   */
  byReplicasChecking: Record<number, { checkers: number; cpuUsPerRequest: number; requestsPerSecond: number }>;
}

/**
 * Runs `op(i)` for about `seconds` of wall time (after a short warm-up) and returns CPU microseconds
 * per call: this process's user + system time (process.cpuUsage), so that time the machine gives to
 * other processes meanwhile does not count (the floor is about CPU work, like CPU s/request).
 */
function timeOp(seconds: number, op: (i: number) => void): number {
  for (let i = 0; i < 200; i++) op(i);
  let calls = 0;
  const cpu0 = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let k = 0; k < 50; k++) op(calls++);
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / calls;
}

export function measureCryptoFloor(
  options: { seconds?: number; replicaCounts?: number[]; valueBytes?: number; keyBytes?: number; backend?: 'sodium' | 'node' } = {},
): CryptoFloor {
  const seconds = options.seconds ?? 1;
  const backend = options.backend ?? hotPathBackend();
  const replicaCounts = options.replicaCounts ?? [4, 7];
  const clientSecret = new Uint8Array(randomBytes(32));
  const replicaSecret = new Uint8Array(randomBytes(32));
  const cluster: ClusterConfig = {
    clusterId: 'bench-crypto-floor',
    f: 1,
    replicas: [0, 1, 2, 3].map((id) => ({ id, url: `ws://127.0.0.1:${7001 + id}`, publicKey: nodeDerivePublicKey(replicaSecret) })),
    clients: [{ id: 0, publicKey: nodeDerivePublicKey(clientSecret) }],
  };
  const clientSigner = createSigner(clientSecret, backend);
  const replicaSigner = createSigner(replicaSecret, backend);
  const requests = new RequestSigner(cluster, 0, clientSigner, createVerifier(backend));
  const verifier = createVerifier(backend);
  const requestTag = domainTag(cluster.clusterId, 'request');
  const replyTag = domainTag(cluster.clusterId, 'reply');

  // Distinct messages, like real traffic (nothing below caches results, but be honest anyway).
  const value = new Uint8Array(options.valueBytes ?? 16).fill(7);
  const ops = Array.from({ length: 1024 }, (_, i) => encodeOp({ type: 'put', key: `k${String(i).padStart((options.keyBytes ?? 16) - 1, '0')}`, value }));
  const signed: Signed<RequestMsg>[] = ops.map((op, i) => requests.sign(1_000_000 + i, op));
  const replies: Signed<ReplyMsg>[] = ops.map((_, i) => {
    const msg: ReplyMsg = { type: 'reply', view: 0, client: 0, timestamp: 1_000_000 + i, replica: i % 4, result: Uint8Array.of(0x82, 0x01, 0xf6) };
    const body = encodeBody(msg);
    return { msg, body, sig: replicaSigner.sign(concatBytes(replyTag, body)) };
  });
  const clientKey = cluster.clients[0]!.publicKey;

  let sink = 0;
  const signRequestUs = timeOp(seconds, (i) => {
    sink += requests.sign(2_000_000 + i, ops[i & 1023]!).sig[0]!;
  });
  const verifyRequestUs = timeOp(seconds, (i) => {
    const r = signed[i & 1023]!;
    if (verifier.verify(clientKey, concatBytes(requestTag, r.body), r.sig)) sink++;
  });
  const verifyReplyUs = timeOp(seconds, (i) => {
    if (requests.verifyReply(replies[i & 1023]!)) sink++;
  });
  if (sink === 0) throw new Error('crypto floor: nothing verified');

  const cores = availableParallelism();
  const byReplicas: CryptoFloor['byReplicas'] = {};
  const byReplicasChecking: CryptoFloor['byReplicasChecking'] = {};
  for (const n of replicaCounts) {
    const f = (n - 1) / 3;
    const cpuUsPerRequest = signRequestUs + n * verifyRequestUs + (f + 1) * verifyReplyUs;
    byReplicas[n] = { cpuUsPerRequest, requestsPerSecond: (cores * 1e6) / cpuUsPerRequest };
    const checkers = n - quorumFor(n, faultsOf(n)).signatureSkippers;
    const checking = signRequestUs + checkers * verifyRequestUs + (f + 1) * verifyReplyUs;
    byReplicasChecking[n] = { checkers, cpuUsPerRequest: checking, requestsPerSecond: (cores * 1e6) / checking };
  }
  return { backend, cores, signRequestUs, verifyRequestUs, verifyReplyUs, byReplicas, byReplicasChecking };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const floor = measureCryptoFloor({ seconds: Number(process.argv[2] ?? 1) });
  console.log(JSON.stringify(floor, null, 2));
}
