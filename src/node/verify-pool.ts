/**
 * Signature verification off the protocol loop, in worker threads (ReplicaNode option
 * `verifyWorkers`; off by default).
 *
 * Every frame from the transport goes through `submit`: the pool decodes it (the same decoder the
 * core uses; a frame that does not decode is passed on untouched for the core to reject), collects
 * the signatures the core will check in the normal case (the envelope of a request, pre-prepare,
 * prepare, commit or checkpoint, and every request of a pre-prepare's batch), and sends them to a
 * worker. A worker verifies with the replica's backend: libsodium, or node:crypto with cached KeyObjects. Frames are handed to `deliver`
 * in arrival order, each once its signatures were checked.
 *
 * The core still verifies everything itself through CoreCrypto.verify: the shell's verify first
 * asks `take(key, data, sig)`, which answers true only for exactly that key, signed data and
 * signature verified valid by a worker (and forgets it). Anything else (a bad signature, a nested
 * certificate of a VIEW-CHANGE, a frame that did not decode here) is verified on the loop as
 * without the pool. So the pool changes where the work runs, never what is accepted.
 *
 * The worker code is plain JavaScript evaluated in the thread: it needs node:crypto (and
 * sodium-native, by the path the main thread resolved), not the TypeScript loader of the main thread.
 */
import { Worker } from 'node:worker_threads';
import { bytesEqual, bytesKey, concatBytes, domainTag } from '../core/auth.ts';
import type { ClusterConfig } from '../core/cluster.ts';
import type { SignedType } from '../core/messages.ts';
import { decodeFrame } from '../codec/messages.ts';
import { sodiumModulePath } from '../crypto/sodium.ts';
import type { Principal } from '../transport/types.ts';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
// libsodium when the main thread found it (its resolved path), node:crypto otherwise; the acceptance
// rules of src/crypto/rules.ts are checked on the main thread before a result is taken.
let sodium = null;
if (workerData && workerData.sodiumPath) {
  try { sodium = require(workerData.sodiumPath); } catch { sodium = null; }
}
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(raw) {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex');
  let key = keys.get(id);
  if (key === undefined) {
    try { key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' }); } catch { key = null; }
    if (keys.size > 65536) keys.clear();
    keys.set(id, key);
  }
  return key;
}
function check(it) {
  if (it.key.length !== 32 || it.sig.length !== 64) return false;
  if (sodium !== null) return sodium.crypto_sign_verify_detached(it.sig, it.data, it.key);
  const key = keyOf(it.key);
  return key !== null && verify(null, it.data, key, it.sig);
}
parentPort.postMessage({ backend: sodium !== null ? 'sodium' : 'node' });
parentPort.on('message', (job) => {
  const ok = new Uint8Array(job.items.length);
  for (let i = 0; i < job.items.length; i++) {
    try { ok[i] = check(job.items[i]) ? 1 : 0; } catch { ok[i] = 0; }
  }
  parentPort.postMessage({ id: job.id, ok }, [ok.buffer]);
});
`;

/** Verified (signature -> signed data) pairs kept for the core to take, at most. */
const VERIFIED_ENTRIES_MAX = 200_000;

interface Item {
  key: Uint8Array;
  data: Uint8Array;
  sig: Uint8Array;
}

interface PendingFrame {
  from: Principal;
  frame: Uint8Array;
  /** Verification results still outstanding for this frame. */
  waiting: number;
}

interface Job {
  items: Item[];
  frames: PendingFrame[];
}

export interface VerifyPoolStats {
  framesSubmitted: number;
  signaturesVerified: number;
  signaturesTaken: number;
}

export class VerifyPool {
  private readonly workers: Worker[] = [];
  private readonly tags = new Map<SignedType, Uint8Array>();
  private readonly clientKeys = new Map<number, Uint8Array>();
  private readonly replicaKeys: Uint8Array[];
  /** Frames in arrival order, released from the head once verified. */
  private readonly frames: PendingFrame[] = [];
  private framesHead = 0;
  private readonly jobs = new Map<number, Job>();
  private nextJob = 0;
  private nextWorker = 0;
  /** Items collected in this event-loop tick, sent as one job per worker round. */
  private batchItems: Item[] = [];
  private batchFrames: PendingFrame[] = [];
  private batchScheduled = false;
  /** signature (latin1) -> signed data, verified valid. */
  private readonly verified = new Map<string, Uint8Array>();
  private stopped = false;
  /** Bytes of frames waiting for their verification. */
  pendingBytes = 0;
  /** The backend each worker loaded, as each reported it once started. */
  readonly workerBackends: Array<'sodium' | 'node'> = [];
  readonly stats: VerifyPoolStats = { framesSubmitted: 0, signaturesVerified: 0, signaturesTaken: 0 };

  constructor(
    cluster: ClusterConfig,
    workers: number,
    private readonly deliver: (from: Principal, frame: Uint8Array) => void,
    private readonly onError: (err: unknown) => void,
    /** The replica's ed25519 backend: the workers use the same. */
    backend: 'sodium' | 'node' = 'node',
  ) {
    for (const t of ['request', 'preprepare', 'prepare', 'commit', 'checkpoint'] as const) this.tags.set(t, domainTag(cluster.clusterId, t));
    for (const c of cluster.clients) this.clientKeys.set(c.id, c.publicKey);
    this.replicaKeys = cluster.replicas.map((r) => r.publicKey);
    for (let i = 0; i < workers; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sodiumPath: backend === 'sodium' ? sodiumModulePath() : undefined } });
      w.on('message', (m: { id: number; ok: Uint8Array } | { backend: 'sodium' | 'node' }) => {
        if ('backend' in m) this.workerBackends.push(m.backend);
        else this.onResult(m.id, m.ok);
      });
      w.on('error', (err) => this.onError(err));
      w.unref();
      this.workers.push(w);
    }
  }

  submit(from: Principal, frame: Uint8Array): void {
    if (this.stopped) return;
    this.stats.framesSubmitted++;
    const pending: PendingFrame = { from, frame, waiting: 0 };
    this.frames.push(pending);
    this.pendingBytes += frame.length;
    const items = this.itemsOf(frame);
    if (items.length === 0) {
      this.release();
      return;
    }
    pending.waiting = items.length;
    for (const it of items) this.batchItems.push(it);
    this.batchFrames.push(pending);
    if (!this.batchScheduled) {
      this.batchScheduled = true;
      setImmediate(() => this.sendBatch());
    }
  }

  /** True when a worker verified exactly this (key, data, signature) as valid; forgets it. */
  take(key: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean {
    if (this.verified.size === 0) return false;
    const k = bytesKey(sig);
    const known = this.verified.get(k);
    if (known === undefined) return false;
    // The key is bound by the data: the core passes the key of the signer named in the body.
    if (!bytesEqual(known, concatBytes(key, data))) return false;
    this.verified.delete(k);
    this.stats.signaturesTaken++;
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.frames.length = 0;
    this.framesHead = 0;
    this.pendingBytes = 0;
    this.jobs.clear();
    this.verified.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  // ---------------------------------------------------------------------------------------------

  private keyOfRequest(client: number): Uint8Array | undefined {
    return this.clientKeys.get(client);
  }

  /** The signatures the core checks for this frame in the normal case; none if it does not decode. */
  private itemsOf(frame: Uint8Array): Item[] {
    const decoded = decodeFrame(frame);
    if (!decoded.ok || decoded.value.kind !== 'signed') return [];
    const { signed, batch } = decoded.value;
    const items: Item[] = [];
    const add = (type: SignedType, key: Uint8Array | undefined, body: Uint8Array, sig: Uint8Array): void => {
      const tag = this.tags.get(type);
      if (tag === undefined || key === undefined) return;
      items.push({ key, data: concatBytes(tag, body), sig });
    };
    const m = signed.msg;
    switch (m.type) {
      case 'request':
        add('request', this.keyOfRequest(m.client), signed.body, signed.sig);
        break;
      case 'preprepare':
      case 'prepare':
      case 'commit':
      case 'checkpoint':
        add(m.type, this.replicaKeys[m.replica], signed.body, signed.sig);
        break;
      default:
        break; // view changes and new views (rare) are verified on the loop
    }
    if (batch !== undefined) for (const r of batch) add('request', this.keyOfRequest(r.msg.client), r.body, r.sig);
    return items;
  }

  private sendBatch(): void {
    this.batchScheduled = false;
    if (this.stopped || this.batchItems.length === 0) return;
    const items = this.batchItems;
    const frames = this.batchFrames;
    this.batchItems = [];
    this.batchFrames = [];
    const id = this.nextJob++;
    this.jobs.set(id, { items, frames });
    const worker = this.workers[this.nextWorker++ % this.workers.length]!;
    worker.postMessage({ id, items });
  }

  private onResult(id: number, ok: Uint8Array): void {
    const job = this.jobs.get(id);
    if (job === undefined) return;
    this.jobs.delete(id);
    for (let i = 0; i < job.items.length; i++) {
      if (ok[i] !== 1) continue;
      const it = job.items[i]!;
      if (this.verified.size >= VERIFIED_ENTRIES_MAX) {
        const oldest = this.verified.keys().next().value;
        if (oldest !== undefined) this.verified.delete(oldest);
      }
      this.verified.set(bytesKey(it.sig), concatBytes(it.key, it.data));
      this.stats.signaturesVerified++;
    }
    // Every frame of a job waited for all of its items, which are all in this job.
    for (const f of job.frames) f.waiting = 0;
    this.release();
  }

  /** Hands the verified frames at the head of the queue to the loop, in arrival order. */
  private release(): void {
    while (this.framesHead < this.frames.length) {
      const f = this.frames[this.framesHead]!;
      if (f.waiting > 0) break;
      this.frames[this.framesHead] = undefined as unknown as PendingFrame;
      this.framesHead++;
      this.pendingBytes -= f.frame.length;
      this.deliver(f.from, f.frame);
    }
    if (this.framesHead > 1024 && this.framesHead * 2 > this.frames.length) {
      this.frames.splice(0, this.framesHead);
      this.framesHead = 0;
    }
  }
}
