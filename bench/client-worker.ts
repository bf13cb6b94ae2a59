/**
 * A benchmark client process: hosts several closed-loop clients (one PbftClient, i.e. one client
 * identity, each), driven by the parent (bench/bench.ts) over the IPC channel:
 *
 *   parent -> worker   { type: 'init', ...WorkerInit }   connect every client
 *   worker -> parent   { type: 'ready' }
 *   parent -> worker   { type: 'run' }                   every client starts its loop: put, await, put, ...
 *                                                        (or get: see WorkerInit.workload)
 *   parent -> worker   { type: 'mark' }                  start of the measured window: counters reset
 *   worker -> parent   { type: 'progress', completed }   every second: requests completed since 'run'
 *   parent -> worker   { type: 'stop' }                  end of the window
 *   worker -> parent   { type: 'result', ...WorkerResult }
 *   parent -> worker   { type: 'exit' }                  close the clients and exit
 *
 * A request counts in the window when it completes between 'mark' and 'stop'; its latency is
 * from just before it was signed to its acceptance (f+1 matching signed replies). CPU time is
 * this process's own (process.cpuUsage) over the window. The worker exits if the parent goes away.
 */
import type { RepliesMode } from '../src/client/repliers.ts';
import { encodeOp } from '../src/app/kv-ops.ts';
import { PbftClient, verifyCacheStats } from '../src/client/client.ts';
import { loadPrivateKey, keyFileName } from '../src/crypto/keyring.ts';
import { join } from 'node:path';
import { clusterFromJson, type ClusterJson } from './lib/keys.ts';
import { benchKey, putCycle } from './lib/workload.ts';
import { Histogram, type HistogramData } from './lib/stats.ts';

export interface WorkerInit {
  cluster: ClusterJson;
  keysDir: string;
  clientIds: number[];
  keyBytes: number;
  valueBytes: number;
  /** Distinct keys each client cycles through (bounds the store's size). */
  keysPerClient: number;
  timeoutMs: number;
  retransmitMs: number;
  /** The SDK's replies option (default 'quorum'). */
  replies?: RepliesMode;
  /** Each client's pause after each answer before its next request, ms (default 0: none). */
  thinkMs?: number;
  /** Replicas expected to answer (fewer than n when one is silent); default n. */
  expectReplicas?: number;
  /**
   * 'put' (default): each client cycles through puts of its keys, alternating two values from one pass
   * to the next, so that every put changes the state. 'get-ordered' / 'get-readonly':
   * each client first puts its keys (before 'ready'), then cycles through gets of them, ordered
   * (invoke: a request like any other) or read-only (get: src/core/reads.ts, falling back to an
   * ordered request when 2f+1 answers do not match).
   */
  workload?: 'put' | 'get-ordered' | 'get-readonly';
}

export interface WorkerResult {
  completed: number;
  errors: number;
  /** Read-only gets answered unordered and fallen back to ordered, in the window. */
  reads?: { unordered: number; fellBack: number };
  histogram: HistogramData;
  cpuSeconds: number;
  /** The user and system (kernel: socket reads and writes) parts of cpuSeconds. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  /**
   * Signature checks the process's clients asked for in the window (requests, replies, handshakes),
   * and how many of them the signature cache they share answered without checking again.
   */
  signatureChecks: number;
  signatureCacheHits: number;
  /** Ordered requests sent again to every replica in the window (PbftClient.replyStats.retransmitted). */
  retransmitted: number;
  /** Replicas some client of this process leaves out of its repliers at the end of the window. */
  leftOut: number[];
  windowSeconds: number;
  errorSamples: string[];
}

export type ToWorker = ({ type: 'init' } & WorkerInit) | { type: 'run' } | { type: 'mark' } | { type: 'stop' } | { type: 'exit' };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; completed: number; errors: number }
  | ({ type: 'result' } & WorkerResult)
  | { type: 'failed'; message: string };

function send(m: FromWorker): void {
  process.send?.(m);
}

let clients: PbftClient[] = [];
let running = false;
let measuring = false;
let completedTotal = 0;
let errorsTotal = 0;
let completed = 0;
let errors = 0;
const errorSamples: string[] = [];
const histogram = new Histogram();
let markCpu: NodeJS.CpuUsage | undefined;
let markAt = 0;
let cacheAtMark = verifyCacheStats();
const loops: Promise<void>[] = [];
let progressTimer: ReturnType<typeof setInterval> | undefined;

async function init(m: WorkerInit): Promise<void> {
  const cluster = clusterFromJson(m.cluster);
  clients = await Promise.all(
    m.clientIds.map(async (id) => {
      const key = loadPrivateKey(join(m.keysDir, keyFileName('client', id)));
      return PbftClient.connect({
        cluster,
        key: { id, secretKey: key.secretKey },
        // The SDK's default: libsodium where it loads, else node:crypto (PBFT_CRYPTO, set by --crypto, chooses).
        crypto: 'auto',
        timeoutMs: m.timeoutMs,
        retransmitMs: m.retransmitMs,
        replies: m.replies ?? 'quorum',
        // Wait for every replica: requests then reach all of them from the start.
        connectTimeoutMs: 60_000,
      });
    }),
  );
  // Connected to f+1 at least; give the rest a moment so that the first requests see every link.
  const n = m.expectReplicas ?? cluster.replicas.length;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && clients.some((c) => c.connectedReplicas().length < n)) await new Promise((r) => setTimeout(r, 20));
  // Pre-encode the operations: the loop measures the service, not string formatting.
  const puts = clients.map((c) => putCycle(c.clientId, m.keysPerClient, m.keyBytes, m.valueBytes));
  const workload = m.workload ?? 'put';
  if (workload !== 'put') {
    // The keys a client reads hold values: written here, before the run.
    await Promise.all(clients.map(async (c, i) => {
      for (const op of puts[i]!.slice(0, m.keysPerClient)) await c.invoke(op);
    }));
  }
  const ops = workload === 'put' ? puts : clients.map((c) => Array.from({ length: m.keysPerClient }, (_, i) => encodeOp({ type: 'get', key: benchKey(c.clientId, i, m.keyBytes) })));
  const call = (c: PbftClient, op: Uint8Array): Promise<Uint8Array> => (workload === 'get-readonly' ? c.invokeReadOnly(op) : c.invoke(op));
  loopsReady = () => {
    for (let i = 0; i < clients.length; i++) loops.push(loop(clients[i]!, ops[i]!, call, m.thinkMs ?? 0));
  };
}

function readTotals(): { unordered: number; fellBack: number } {
  return clients.reduce((t, c) => ({ unordered: t.unordered + c.readStats.unordered, fellBack: t.fellBack + c.readStats.fellBack }), { unordered: 0, fellBack: 0 });
}

let readsAtMark = { unordered: 0, fellBack: 0 };

function retransmittedTotal(): number {
  return clients.reduce((t, c) => t + c.replyStats.retransmitted, 0);
}

let retransmittedAtMark = 0;

let loopsReady: (() => void) | undefined;

async function loop(client: PbftClient, ops: Uint8Array[], call: (c: PbftClient, op: Uint8Array) => Promise<Uint8Array>, thinkMs: number): Promise<void> {
  let i = 0;
  while (running) {
    // A pause between an answer and the next request (--think-ms), outside the latency recorded.
    if (thinkMs > 0 && i > 0) await new Promise((resolve) => setTimeout(resolve, thinkMs));
    if (!running) return;
    const op = ops[i++ % ops.length]!;
    const start = performance.now();
    try {
      await call(client, op);
      completedTotal++;
      if (measuring) {
        completed++;
        histogram.record((performance.now() - start) * 1000);
      }
    } catch (err) {
      if (!running) return;
      errorsTotal++;
      if (measuring) errors++;
      if (errorSamples.length < 5) errorSamples.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
  }
}

process.on('message', (raw: unknown) => {
  const m = raw as ToWorker;
  switch (m.type) {
    case 'init':
      init(m).then(
        () => send({ type: 'ready' }),
        (err: unknown) => send({ type: 'failed', message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'run':
      running = true;
      loopsReady?.();
      progressTimer = setInterval(() => send({ type: 'progress', completed: completedTotal, errors: errorsTotal }), 1_000);
      break;
    case 'mark':
      completed = 0;
      errors = 0;
      histogram.reset();
      markCpu = process.cpuUsage();
      markAt = performance.now();
      readsAtMark = readTotals();
      retransmittedAtMark = retransmittedTotal();
      cacheAtMark = verifyCacheStats();
      measuring = true;
      break;
    case 'stop': {
      measuring = false;
      const cpu = process.cpuUsage(markCpu);
      const reads = readTotals();
      const cache = verifyCacheStats();
      send({
        type: 'result',
        completed,
        errors,
        reads: { unordered: reads.unordered - readsAtMark.unordered, fellBack: reads.fellBack - readsAtMark.fellBack },
        histogram: histogram.toData(),
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        cpuUserSeconds: cpu.user / 1e6,
        cpuSystemSeconds: cpu.system / 1e6,
        signatureChecks: cache.checks - cacheAtMark.checks,
        signatureCacheHits: cache.hits - cacheAtMark.hits,
        retransmitted: retransmittedTotal() - retransmittedAtMark,
        leftOut: [...new Set(clients.flatMap((c) => c.replyStats.leftOut))].sort((a, b) => a - b),
        windowSeconds: (performance.now() - markAt) / 1000,
        errorSamples,
      });
      break;
    }
    case 'exit':
      running = false;
      if (progressTimer !== undefined) clearInterval(progressTimer);
      void Promise.all(clients.map((c) => c.close().catch(() => undefined))).finally(() => process.exit(0));
      setTimeout(() => process.exit(0), 3_000).unref();
      break;
  }
});

process.on('disconnect', () => process.exit(0));
