/**
 * The durable layout of a replica: the core decides keys and values; a Storage makes them durable.
 * Everything a replica signs is written (synced, in the turn's one batch) before it is sent.
 *
 *   m/view                     [view, status (0 normal, 1 view-change), viewChangeAttempts]
 *   m/vc/<view 12>             own VIEW-CHANGEs of the last few views [body, sig]
 *   m/nv                       NEW-VIEW of the current view [body, sig]
 *   m/stable                   stable checkpoint certificate [seq, digest, [[body, sig], ...]]
 *   m/floor                    while recovering from lost state: [view, seq] it may not sign below (horizon.ts)
 *   c/state                    own latest checkpoint: [seq, digest, client table bytes]
 *   a/<index 6>                an application partition, whole: as of c/state, or the base its records apply to
 *   b/<seq 16>/<index 6>/<name>  for an application with records (PartitionedState.diffPartition: the
 *                              key-value store, one per key): a record that differs from the base
 *                              (empty: deleted), under the stable checkpoint that wrote it; a
 *                              record written again replaces the key of the one before. The
 *                              partition as of c/state is the base with its records applied
 *                              (joinPartition). When more than ReplicaOptions.storedRecordsMax (16)
 *                              would differ, the partition is written whole again and its records
 *                              deleted. Keyed by checkpoint so that a checkpoint's records sort
 *                              together after the older ones: RocksDB's merges of newly flushed
 *                              files then overlap only the newest records and the log, not every
 *                              partition's base.
 *   a/<index 6>/<name>         the same record in the layout before records were keyed by checkpoint
 *                              (LEGACY_RECORD_SEQ): read, and deleted when replaced.
 *   c/v/<seq 16>/<replica 4>   CHECKPOINT votes [body, sig]
 *   l/<seq 16>/s               log slot record (see SlotRecord)
 *   l/<seq 16>/b/<digest hex>  batch: [time, [[body, sig], ...]]
 *   x/<kind>/<signer 5>/<view 12>/<seq 16>  equivocation evidence [epoch, [[body, sig], [body, sig]]] (evidence.ts)
 */
import { asArray, asBytes, asUint, decodeCbor, encodeCbor, fail, guarded, type Decoded } from './encoding.ts';
import { decodeBody, epochProofArray, epochProofFrom } from './body.ts';
import type { PartitionedState, WriteOp } from './ports.ts';
import type {
  EpochProof,
  CheckpointCert,
  CommitMsg,
  PreparedCert,
  PrepareMsg,
  PrePrepareMsg,
  RequestMsg,
  Signed,
  SignedMessage,
  SignedType,
} from './messages.ts';

export const pad = (n: number, width: number): string => n.toString().padStart(width, '0');

function partitionRecordPrefix(i: number): string {
  return `a/${pad(i, 6)}/`;
}

/** The value of a record whose name is deleted from the base. */
export const DELETED_RECORD: Uint8Array = new Uint8Array(0);

/** Whether the application's partitions are stored as a base and records (both methods present). */
export function storesRecords(app: PartitionedState): app is PartitionedState & Required<Pick<PartitionedState, 'diffPartition' | 'joinPartition'>> {
  return app.diffPartition !== undefined && app.joinPartition !== undefined;
}

/**
 * The seq a stored record's key carries when it was written in the older layout, under its partition
 * (`a/<partition>/<name>`, before records were keyed by checkpoint): still read, and deleted when the
 * record is next replaced.
 */
export const LEGACY_RECORD_SEQ = -1;

export const KEYS = {
  view: 'm/view',
  viewChange: (view: number) => `m/vc/${pad(view, 12)}`,
  viewChangePrefix: 'm/vc/',
  newView: 'm/nv',
  stable: 'm/stable',
  floor: 'm/floor',
  /** The token of the last clean stop (horizon.ts, `clean`). */
  cleanStop: 'm/clean-stop',
  checkpointState: 'c/state',
  epochProof: (epoch: number) => `e/${pad(epoch, 10)}`,
  epochProofPrefix: 'e/',
  partition: (i: number) => `a/${pad(i, 6)}`,
  partitionRecord: (i: number, name: string) => partitionRecordPrefix(i) + name,
  /** The prefix of partition i's record keys (a stable checkpoint builds many keys from one). */
  partitionRecordPrefix,
  partitionPrefix: 'a/',
  /**
   * A record as the stable checkpoint at `seq` wrote it: under the checkpoint first, so that the
   * records of each checkpoint sort together and after those of the ones before. New records then
   * land at the end of their range, beside the log, and RocksDB's merges of new files into level 1
   * do not rewrite the partitions' bases and older records (docs/performance.md, Scale with state size).
   */
  record: (seq: number, i: number, name: string) => `b/${pad(seq, 16)}/${pad(i, 6)}/${name}`,
  recordPrefix: 'b/',
  checkpointVote: (seq: number, replica: number) => `c/v/${pad(seq, 16)}/${pad(replica, 4)}`,
  checkpointVotePrefix: 'c/v/',
  checkpointVotesBelow: (seq: number) => `c/v/${pad(seq, 16)}`,
  slot: (seq: number) => `l/${pad(seq, 16)}/s`,
  batch: (seq: number, digestHex: string) => `l/${pad(seq, 16)}/b/${digestHex}`,
  logPrefix: 'l/',
  logBelow: (seq: number) => `l/${pad(seq, 16)}`,
  evidence: (kind: string, signer: number, view: number, seq: number) => `x/${kind}/${pad(signer, 5)}/${pad(view, 12)}/${pad(seq, 16)}`,
  evidencePrefix: 'x/',
} as const;

/** A stored record's key: by the checkpoint that wrote it, or under its partition for LEGACY_RECORD_SEQ. */
export function recordKey(i: number, name: string, seq: number): string {
  return seq === LEGACY_RECORD_SEQ ? KEYS.partitionRecord(i, name) : KEYS.record(seq, i, name);
}

/**
 * What a key of the records range (KEYS.recordPrefix) names: the checkpoint, the partition (below
 * `partitionCount`) and the record's name (non-empty); undefined when it names none.
 */
export function recordNamedBy(key: string, partitionCount: number): { seq: number; partition: number; name: string } | undefined {
  const partition = recordPartitionOf(key, partitionCount);
  return partition < 0 ? undefined : { seq: recordSeqOf(key), partition, name: key.slice(RECORD_NAME_AT) };
}

/**
 * The partition a key of the records range names when the whole key is well formed (recordNamedBy),
 * else -1: read by position, without allocating (a restart reads every record key).
 */
export function recordPartitionOf(key: string, partitionCount: number): number {
  // 'b/', 16 digits, '/', 6 digits, '/', the name.
  if (key.length <= RECORD_NAME_AT || !key.startsWith(KEYS.recordPrefix) || key.charCodeAt(RECORD_NAME_AT - 8) !== SLASH || key.charCodeAt(RECORD_NAME_AT - 1) !== SLASH) return -1;
  const seq = digitsAt(key, 2, 16);
  const partition = digitsAt(key, RECORD_NAME_AT - 7, 6);
  return seq < 0 || !Number.isSafeInteger(seq) || partition < 0 || partition >= partitionCount ? -1 : partition;
}

/** The checkpoint a well-formed record key names (recordPartitionOf >= 0). */
export function recordSeqOf(key: string): number {
  return digitsAt(key, 2, 16);
}

/** Where a record key's name starts: after 'b/', the seq's 16 digits, '/', the partition's 6 digits and '/'. */
export const RECORD_NAME_AT = 2 + 16 + 1 + 6 + 1;
const SLASH = 0x2f;

/** The decimal number of the `count` ASCII digits of `s` at `at`, or -1 when one of them is not a digit (or `s` ends first). */
export function digitsAt(s: string, at: number, count: number): number {
  let n = 0;
  for (let i = at; i < at + count; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (!(d >= 0 && d <= 9)) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Every stored key of the application partitions (KEYS.partitionPrefix): 'a/' <= key < 'a0'. */
export const PARTITION_RANGE = { gte: KEYS.partitionPrefix, lt: 'a0' } as const;

/** Every stored key of the records keyed by checkpoint (KEYS.recordPrefix): 'b/' <= key < 'b0'. */
export const RECORD_RANGE = { gte: KEYS.recordPrefix, lt: 'b0' } as const;

export type Pair = [Uint8Array, Uint8Array];
export const toPair = (s: Signed): Pair => [s.body, s.sig];

export function signedFromPair<K extends SignedType>(v: unknown, type: K): Signed<Extract<SignedMessage, { type: K }>> {
  const arr = asArray(v, 'pair', 2);
  const body = asBytes(arr[0], 'pair.body');
  const sig = asBytes(arr[1], 'pair.sig', 64);
  const msg = decodeBody(body);
  if (!msg.ok) fail(msg.reason);
  if (msg.value.type !== type) fail(`stored ${type} has type ${msg.value.type}`);
  return { msg: msg.value as Extract<SignedMessage, { type: K }>, body, sig };
}

export const encodePair = (s: Signed): Uint8Array => encodeCbor(toPair(s));

export function decodePair<K extends SignedType>(bytes: Uint8Array, type: K): Decoded<Signed<Extract<SignedMessage, { type: K }>>> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    return signedFromPair(d.value, type);
  });
}

export function encodeCheckpointCert(c: CheckpointCert): Uint8Array {
  return encodeCbor(checkpointCertToValue(c));
}

function checkpointCertToValue(c: CheckpointCert): unknown[] {
  return [c.seq, c.digest, c.proof.map(toPair), c.epoch];
}

export function checkpointCertFromValue(v: unknown): CheckpointCert {
  const arr = asArray(v, 'stable', 4);
  if (arr.length !== 4) fail('stable: wrong arity (a data directory from an older version?)');
  return {
    epoch: asUint(arr[3], 'stable.epoch'),
    seq: asUint(arr[0], 'stable.seq'),
    digest: asBytes(arr[1], 'stable.digest', 32),
    proof: asArray(arr[2], 'stable.proof').map((p) => signedFromPair(p, 'checkpoint')),
  };
}

export function decodeCheckpointCert(bytes: Uint8Array): Decoded<CheckpointCert> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    return checkpointCertFromValue(d.value);
  });
}

export interface SlotRecord {
  view: number;
  prePrepare?: Signed<PrePrepareMsg>;
  prepares: Signed<PrepareMsg>[];
  commits: Signed<CommitMsg>[];
  cert?: PreparedCert;
  committedDigest?: Uint8Array;
  commitCert?: Signed<CommitMsg>[];
}

export function encodeSlot(r: SlotRecord): Uint8Array {
  return encodeCbor([
    r.view,
    r.prePrepare ? toPair(r.prePrepare) : null,
    r.prepares.map(toPair),
    r.commits.map(toPair),
    r.cert ? [toPair(r.cert.prePrepare), r.cert.prepares.map(toPair)] : null,
    r.committedDigest ?? null,
    r.commitCert ? r.commitCert.map(toPair) : null,
  ]);
}

export function decodeSlot(bytes: Uint8Array): Decoded<SlotRecord> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'slot', 7);
    const record: SlotRecord = {
      view: asUint(a[0], 'slot.view'),
      prepares: asArray(a[2], 'slot.prepares').map((p) => signedFromPair(p, 'prepare')),
      commits: asArray(a[3], 'slot.commits').map((p) => signedFromPair(p, 'commit')),
    };
    if (a[1] !== null) record.prePrepare = signedFromPair(a[1], 'preprepare');
    if (a[4] !== null) {
      const c = asArray(a[4], 'slot.cert', 2);
      record.cert = {
        prePrepare: signedFromPair(c[0], 'preprepare'),
        prepares: asArray(c[1], 'slot.cert.prepares').map((p) => signedFromPair(p, 'prepare')),
      };
    }
    if (a[5] !== null) record.committedDigest = asBytes(a[5], 'slot.committedDigest', 32);
    if (a[6] !== null) record.commitCert = asArray(a[6], 'slot.commitCert').map((p) => signedFromPair(p, 'commit'));
    return record;
  });
}

export const encodeBatch = (requests: readonly Signed<RequestMsg>[], time: number): Uint8Array => encodeCbor([time, requests.map(toPair)]);

export function decodeBatch(bytes: Uint8Array): Decoded<{ requests: Signed<RequestMsg>[]; time: number }> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'batch', 2);
    if (a.length !== 2) fail('batch: wrong arity (a data directory from an older version?)');
    return { time: asUint(a[0], 'batch.time'), requests: asArray(a[1], 'batch.requests').map((p) => signedFromPair(p, 'request')) };
  });
}

export function encodeViewState(view: number, viewChanging: boolean, attempts: number): Uint8Array {
  return encodeCbor([view, viewChanging ? 1 : 0, attempts]);
}

export function decodeViewState(bytes: Uint8Array): Decoded<{ view: number; viewChanging: boolean; attempts: number }> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'view', 3);
    return { view: asUint(a[0], 'view'), viewChanging: asUint(a[1], 'status', 1) === 1, attempts: asUint(a[2], 'attempts') };
  });
}

export function encodeCheckpointState(seq: number, digest: Uint8Array, clients: Uint8Array, membership: Uint8Array): Uint8Array {
  return encodeCbor([seq, digest, clients, membership]);
}

export function decodeCheckpointState(bytes: Uint8Array): Decoded<{ seq: number; digest: Uint8Array; clients: Uint8Array; membership: Uint8Array }> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'checkpoint state', 4);
    // (Three fields: a data directory from before membership was replicated state; its digest no
    // longer matches, so the replica transfers state instead of trusting it.)
    if (a.length !== 4) fail('checkpoint state: from an older version (no membership)');
    return { seq: asUint(a[0], 'seq'), digest: asBytes(a[1], 'digest', 32), clients: asBytes(a[2], 'clients'), membership: asBytes(a[3], 'membership') };
  });
}

export function encodeEpochProof(p: EpochProof): Uint8Array {
  return encodeCbor(epochProofArray(p));
}

export function decodeEpochProof(bytes: Uint8Array): Decoded<EpochProof> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    return epochProofFrom(d.value, 'epoch proof');
  });
}

/**
 * Collects the writes of one turn; later writes of a key replace earlier ones (one op per key, so
 * their order in the batch, which is written all or nothing, does not matter: a replaced op keeps
 * its first place). A partition's writes (persistPartition: its records, or its whole bytes) go to
 * a second lane, `record`: appended in order without a lookup per key, after every op of the first
 * lane in the batch, and a later one of the same key applies after an earlier one (Storage.write
 * applies a batch's ops in order). A stable checkpoint after a bulk load writes hundreds of
 * thousands of records, and hashing each new key string into the map was a large part of that
 * turn. Only keys that no op of the first lane touches after a write of the same turn in the second
 * may go there (a partition's keys are written by persistPartition alone; the deletes of
 * dropOnPersist, in the first lane, must precede its writes).
 */
export class WriteSet {
  private readonly ops = new Map<string, WriteOp>();
  private records: WriteOp[] = [];
  put(key: string, value: Uint8Array): void {
    this.ops.set(key, { type: 'put', key, value });
  }
  del(key: string): void {
    this.ops.set(key, { type: 'del', key });
  }
  /** A write of a partition record: in the second lane (see above). */
  record(op: WriteOp): void {
    this.records.push(op);
  }
  get size(): number {
    return this.ops.size + this.records.length;
  }
  take(): WriteOp[] {
    const out = [...this.ops.values()];
    this.ops.clear();
    for (const op of this.records) out.push(op);
    this.records = [];
    return out;
  }
}
