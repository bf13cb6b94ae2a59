/**
 * Restart: rebuilding the replica from what it wrote (persist.ts), and checking it against the
 * horizon record (horizon.ts). A replica that finds less than it once held signs nothing below its
 * floor until it has caught up (SignFloor).
 */
import { bytesEqual } from './auth.ts';
import { makeBatch } from './batch.ts';
import { ClientTable } from './clienttable.ts';
import { preparedCertificate, quorumFor } from './quorum.ts';
import type { CommitMsg } from './messages.ts';
import { decodeVoteEvidence } from './evidence.ts';
import { digitsAt, KEYS, LEGACY_RECORD_SEQ, RECORD_NAME_AT, recordPartitionOf, recordSeqOf, storesRecords, decodeBatch, decodeCheckpointCert, decodeCheckpointState, decodeEpochProof, decodePair, decodeSlot, decodeViewState } from './persist.ts';
import { decodeMembership, mayHoldInTable, type Membership } from './membership.ts';
import { decodeCleanToken, decodeHorizon, decodeSignFloor, encodeSignFloor, lostAgainst, type Horizon, type SignFloor } from './horizon.ts';
import { stateDigest } from './statetree.ts';
import { type ReplicaState, type Slot, type StoredRecords } from './state.ts';
import { ProtocolInvariantError } from './types.ts';
import { STORED_RECORDS_LIMIT } from './limits.ts';

/**
 * The slots of the current view that are prepared by the same rule as the normal case (quorum.ts)
 * continue as they would have: a COMMIT of ours that is missing (it was not allowed while
 * recovering, say) is signed now, and what is committed executes.
 */
export function resumePrepared(rs: ReplicaState): void {
  if (rs.transfer) return;
  const q = rs.deps.unsafeTestOnly?.recoveryQuorum ? quorumFor(rs.n, rs.f, rs.deps.unsafeTestOnly.recoveryQuorum, rs.q.model) : rs.q;
  for (const slot of [...rs.slots.values()].sort((a, b) => a.seq - b.seq)) {
    if (slot.view !== rs.view || slot.preparedInView || slot.seq <= rs.lastExecuted) continue;
    if (!preparedCertificate(q, slot.prePrepare, slot.prepares.values())) continue;
    if (q === rs.q) rs.checkPrepared(slot);
    else unsafePrepared(rs, slot);
  }
  rs.executeReady();
}

/** The negative control `recovery-quorum`: treats the slot as prepared whatever the quorum says. */
function unsafePrepared(rs: ReplicaState, slot: Slot): void {
  const pp = slot.prePrepare!.msg;
  slot.preparedInView = true;
  slot.cert = { prePrepare: slot.prePrepare!, prepares: [...slot.prepares.values()] };
  rs.markDirty(slot);
  if (!slot.commits.has(rs.id)) {
    const commit = rs.auth.sign<CommitMsg>({ type: 'commit', view: pp.view, seq: pp.seq, digest: pp.digest, replica: rs.id });
    slot.commits.set(rs.id, commit);
    slot.ownCommitTurn = rs.durability.turn;
    rs.broadcast(rs.frames.encodeSignedFrame(commit));
  }
  rs.checkCommitted(slot);
}

/**
 * Compares what recovery found with the horizon record (horizon.ts) and the store's own damage
 * report. Less than recorded: the durable state is missing or damaged, and the replica rejoins as a
 * recovering replica. Damage that no horizon record can bound: it refuses to start (throws).
 */
export function checkHorizon(rs: ReplicaState, stored: { horizon?: Uint8Array; damage?: string; cleanStop?: Uint8Array | undefined }): void {
  let recorded: Horizon | undefined;
  if (stored.horizon !== undefined) {
    const h = decodeHorizon(stored.horizon);
    if (!h.ok) throw new ProtocolInvariantError(`the horizon record is damaged (${h.reason}): cannot tell what this replica signed before`);
    recorded = h.value;
  }
  // Restarted (a record means an earlier incarnation may have voted): its PRE-PREPAREs and PREPAREs
  // left before their writes (durability.ts, rule 1a), and all of them lie within the recorded view
  // and window. It abstains there, unless the record says the last incarnation stopped cleanly and
  // the database is the one that stop left (it holds the stop's token): then every vote it sent is
  // on disk, like any other statement (horizon.ts, `clean`).
  // (The negative control ignoreLostData trusts its disk as complete: it does not abstain either.)
  const token = stored.cleanStop === undefined ? undefined : decodeCleanToken(stored.cleanStop);
  const clean = recorded?.clean !== undefined && token?.ok === true && token.value === recorded.clean;
  if (recorded && !clean && !rs.deps.unsafeTestOnly?.noAbstain && !rs.deps.unsafeTestOnly?.ignoreLostData) {
    rs.abstain = { view: recorded.view, seq: recorded.stable + rs.opts.windowSize };
    rs.events.push({ type: 'abstaining', abstain: { ...rs.abstain } });
  }
  // A stable checkpoint above what was executed covers it (state transfer brings it back).
  const found = { view: rs.view, stable: rs.h, executed: Math.max(rs.lastExecuted, rs.h) };
  const reasons = recorded ? lostAgainst(recorded, found) : [];
  if (stored.damage !== undefined) reasons.unshift(stored.damage);
  if (reasons.length === 0 || rs.deps.unsafeTestOnly?.ignoreLostData) return;
  if (!recorded) {
    throw new ProtocolInvariantError(
      `${stored.damage}; no horizon record bounds what this replica signed before, so it cannot rejoin safely (move the data directory aside to start it as a new, empty replica)`,
    );
  }
  // Views: it may have signed in every view up to the recorded one, and in the one it recovered, unless
  // it was already recovering (a stored floor): then only a view lost since counts.
  const floor: SignFloor = {
    view: found.view < recorded.view ? recorded.view : (rs.floor?.view ?? found.view),
    seq: Math.max(recorded.stable, rs.h, (rs.floor?.seq ?? 0) - rs.opts.windowSize) + rs.opts.windowSize,
  };
  rs.floor = floor;
  rs.writes.put(KEYS.floor, encodeSignFloor(floor));
  if (rs.view < floor.view) {
    rs.view = floor.view;
    rs.viewStatus = 'normal';
  }
  rs.persistViewState();
  rs.events.push({ type: 'stored-state-lost', reasons, floor: { ...floor } });
}

/** A leaf no partition has: a partition marked with it is written at the next stable checkpoint. */
const NOT_STORED = new Uint8Array(0);

/**
 * Loads the application partitions stored as of c/state (persist.ts: a base a/<index>, whole bytes,
 * and for an application with records the records applied to it by joinPartition: each under the
 * checkpoint that wrote it, b/<seq>/<index>/<name>, streamed first through addRecord, or in the older
 * layout a/<index>/<name>, streamed with the base through add),
 * one partition at a time as their keys arrive: the shell streams them from its disk (the largest
 * part of the state by far), so that what a partition's join replaces is garbage at once rather
 * than held with the whole state until the end. Keys must arrive ascending by their UTF-8 bytes, as
 * a Storage returns them (a partition's base, then its records); a key of a partition already
 * loaded is refused with a throw (the storage broke its contract). A key that names no partition
 * counts against partition 0, which is therefore loaded last.
 *
 * finish() returns why the stored state cannot be used (undefined: nothing wrong so far; the caller
 * checks the digest next) and the partitions that could not be read. For each of those,
 * rs.dropOnPersist lists its stored keys: they are deleted when the partition is next written,
 * which writes it out in full. Notes the names of each readable partition's records (for
 * persistPartition).
 */
export class PartitionLoader {
  private readonly withRecords: boolean;
  private unusable: string | undefined;
  private readonly unreadable: number[] = [];
  /** The partition whose keys are arriving (-1: none yet). */
  private index = -1;
  private current: StoredPartition | undefined;
  /** Partition 0, kept until finish(): keys that name no partition count against it. */
  private zero: StoredPartition | undefined;
  /** Entries seen (records and partition keys). */
  entries = 0;
  /** The records keyed by checkpoint (KEYS.record), until their partitions load. */
  private readonly held: HeldRecords;

  constructor(private readonly rs: ReplicaState) {
    this.withRecords = storesRecords(rs.app);
    this.held = new HeldRecords(rs.app.partitionCount);
  }

  /**
   * One stored key of the records range (KEYS.recordPrefix, RECORD_RANGE) and its value, in any
   * order, all of them before the first add(): a partition loads as soon as the next one's keys
   * arrive, with the records it has by then.
   */
  addRecord(key: string, value: Uint8Array): void {
    if (!key.startsWith(KEYS.recordPrefix)) throw new ProtocolInvariantError(`recovery: ${JSON.stringify(key)} is not a record key`);
    if (this.index !== -1 || this.zero !== undefined) throw new ProtocolInvariantError(`recovery: record key ${JSON.stringify(key)} arrived after partition keys (give every record first)`);
    this.entries++;
    this.held.add(key, value);
  }

  /** One stored key of the partition range (KEYS.partitionPrefix) and its value, ascending by key, after every addRecord. */
  add(key: string, value: Uint8Array): void {
    if (!key.startsWith(KEYS.partitionPrefix)) throw new ProtocolInvariantError(`recovery: ${JSON.stringify(key)} is not a partition key`);
    this.entries++;
    const parsed = partitionNamedBy(key, this.rs.app.partitionCount);
    // A key naming no partition is deleted with partition 0.
    const index = parsed >= 0 ? parsed : 0;
    let entry: StoredPartition;
    if (index === 0) entry = this.zero ??= { keys: [], records: [] };
    else {
      if (index !== this.index) {
        if (index < this.index) throw new ProtocolInvariantError(`recovery: stored partition key ${JSON.stringify(key)} arrived after partition ${this.index}'s (the storage must return keys in order)`);
        if (this.current !== undefined) this.load(this.index, this.current);
        this.index = index;
        this.current = { keys: [], records: [] };
      }
      entry = this.current!;
    }
    entry.keys.push(key);
    const rest = key.slice(KEYS.partitionPrefix.length + 6);
    if (index !== parsed || (rest !== '' && (rest[0] !== '/' || rest.length === 1))) entry.bad ??= `stored partition key ${JSON.stringify(key)} is malformed`;
    else if (rest === '') entry.base = value;
    else entry.records.push([rest.slice(1), value]);
  }

  finish(): { unusable?: string; unreadable: number[] } {
    if (this.current !== undefined) this.load(this.index, this.current);
    this.current = undefined;
    // Partitions stored as records alone (no base), and those after the last base streamed.
    for (const index of this.held.partitions()) if (index !== 0) this.load(index, { keys: [], records: [] });
    if (this.zero !== undefined || this.held.has(0)) this.load(0, this.zero ?? { keys: [], records: [] });
    this.held.clear();
    this.zero = undefined;
    return this.unusable === undefined ? { unreadable: this.unreadable } : { unusable: this.unusable, unreadable: this.unreadable };
  }

  private load(index: number, entry: StoredPartition): void {
    const rs = this.rs;
    const app = rs.app;
    const stored = this.records(index, entry);
    let reason = entry.bad;
    if (reason === undefined && entry.records.length > 0 && !this.withRecords) reason = `partition ${index} is stored with records, which this application does not read`;
    if (reason === undefined && entry.records.length > STORED_RECORDS_LIMIT) reason = `partition ${index} has ${entry.records.length} records stored, more than ${STORED_RECORDS_LIMIT}`;
    if (reason === undefined) {
      // Our own bytes, checked against the stored checkpoint digest by the caller.
      const joined = entry.records.length === 0 ? { ok: true as const, value: entry.base! } : app.joinPartition!(index, entry.base, entry.records);
      const res = joined.ok ? (app.loadPartition !== undefined ? app.loadPartition(index, joined.value) : app.writePartition(index, joined.value)) : joined;
      if (!res.ok) reason = `stored partition ${index} is malformed: ${res.reason}`;
    }
    if (reason !== undefined) {
      this.unusable ??= reason;
      this.unreadable.push(index);
      rs.dropOnPersist.set(index, entry.keys);
      return;
    }
    if (stored.size > 0) rs.persistedRecords.set(index, stored);
  }

  /**
   * Partition `index`'s records of both layouts into `entry.records`, ascending by name as
   * joinPartition takes them, their keys into `entry.keys`; returns the seq of each one's key. A
   * name stored twice (never written so: a record replaces the key of its name) marks the entry bad.
   */
  private records(index: number, entry: StoredPartition): StoredRecords {
    const stored: StoredRecords = new Map();
    for (const [name] of entry.records) stored.set(name, LEGACY_RECORD_SEQ);
    this.held.take(index, (key, seq, value) => {
      entry.keys.push(key);
      if (seq === MALFORMED_RECORD) {
        entry.bad ??= `stored record key ${JSON.stringify(key)} is malformed`;
        return;
      }
      const name = key.slice(RECORD_NAME_AT);
      if (stored.has(name)) {
        entry.bad ??= `partition ${index}: record ${JSON.stringify(name)} is stored twice`;
        return;
      }
      stored.set(name, seq);
      entry.records.push([name, value]);
    });
    // Usually in order already (one checkpoint's records of a partition, ascending by key): checked in one pass.
    const list = entry.records;
    for (let k = 1; k < list.length; k++) {
      if (compareUtf8Names(list[k - 1]![0], list[k]![0]) >= 0) {
        list.sort(([a], [b]) => compareUtf8Names(a, b));
        break;
      }
    }
    return stored;
  }
}

/** The seq HeldRecords notes for a key of the records range that names no record of a partition. */
const MALFORMED_RECORD = -2;

/**
 * The records keyed by checkpoint that a restart reads before the partitions they belong to
 * (PartitionLoader.addRecord): held in columns, their values copied into a few large chunks, so
 * that holding hundreds of thousands of them until their partitions load costs the garbage
 * collector one string each (the key) rather than an object, a byte array and its buffer each.
 * Records are taken per partition in the order they were added (a storage gives them ascending by
 * key: by checkpoint, then name).
 */
class HeldRecords {
  private keys: string[] = [];
  private seqs: number[] = [];
  /** The partition each record names (a malformed key: 0, deleted with partition 0). */
  private parts: number[] = [];
  /** Where each value is: its chunk, its offset in it and its length. */
  private chunkOf: number[] = [];
  private starts: number[] = [];
  private lengths: number[] = [];
  private chunks: Uint8Array[] = [];
  private used = 0;
  /** After the last add: the records of partition p are order[first[p] .. first[p + 1]). */
  private first: Int32Array | undefined;
  private order: Int32Array | undefined;
  /** After the last add: 1 for each partition whose records were taken. */
  private taken: Uint8Array | undefined;

  constructor(private readonly partitionCount: number) {}

  add(key: string, value: Uint8Array): void {
    if (this.first !== undefined) throw new ProtocolInvariantError(`recovery: record key ${JSON.stringify(key)} arrived after its partitions began to load`);
    const partition = recordPartitionOf(key, this.partitionCount);
    this.keys.push(key);
    this.seqs.push(partition < 0 ? MALFORMED_RECORD : recordSeqOf(key));
    this.parts.push(partition < 0 ? 0 : partition);
    let chunk = this.chunks[this.chunks.length - 1];
    const length = value.length;
    if (chunk === undefined || this.used + length > chunk.length) {
      chunk = new Uint8Array(Math.max(HELD_CHUNK_BYTES, length));
      this.chunks.push(chunk);
      this.used = 0;
    }
    chunk.set(value, this.used);
    this.chunkOf.push(this.chunks.length - 1);
    this.starts.push(this.used);
    this.lengths.push(length);
    this.used += length;
  }

  /** Whether partition `index` has records held (not taken yet). */
  has(index: number): boolean {
    const first = this.index().first;
    return first[index + 1]! > first[index]! && this.taken![index] === 0;
  }

  /** The partitions with records held (not taken yet), ascending. */
  partitions(): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.partitionCount; p++) if (this.has(p)) out.push(p);
    return out;
  }

  /** Each record of partition `index`, in the order added (its value a view of the chunk, not a copy); then forgets them. */
  take(index: number, each: (key: string, seq: number, value: Uint8Array) => void): void {
    const { first, order } = this.index();
    const end = first[index + 1]!;
    for (let k = first[index]!; k < end; k++) {
      const r = order[k]!;
      const start = this.starts[r]!;
      each(this.keys[r]!, this.seqs[r]!, this.chunks[this.chunkOf[r]!]!.subarray(start, start + this.lengths[r]!));
    }
    // Taken once: a partition loads once.
    this.taken![index] = 1;
  }

  clear(): void {
    this.keys = [];
    this.seqs = [];
    this.parts = [];
    this.chunkOf = [];
    this.starts = [];
    this.lengths = [];
    this.chunks = [];
    this.first = undefined;
    this.order = undefined;
    this.taken = undefined;
  }

  /** The records grouped by partition (a stable counting sort), built once after the last add. */
  private index(): { first: Int32Array; order: Int32Array } {
    if (this.first !== undefined && this.order !== undefined) return { first: this.first, order: this.order };
    const n = this.parts.length;
    const first = new Int32Array(this.partitionCount + 1);
    for (let r = 0; r < n; r++) first[this.parts[r]! + 1]!++;
    for (let p = 0; p < this.partitionCount; p++) first[p + 1]! += first[p]!;
    const next = first.slice(0, this.partitionCount);
    const order = new Int32Array(n);
    for (let r = 0; r < n; r++) order[next[this.parts[r]!]!++] = r;
    this.first = first;
    this.order = order;
    this.taken = new Uint8Array(this.partitionCount);
    return { first, order };
  }
}

/** HeldRecords' value chunks: 4 MiB (a value larger than that gets a chunk of its own). */
const HELD_CHUNK_BYTES = 4 << 20;

const nameEncoder = new TextEncoder();

/**
 * Record names ordered by their UTF-8 bytes (the order joinPartition takes and storage keys sort in).
 * UTF-16 code units below the surrogates order as their UTF-8 encodings do: compared as they are up
 * to the first difference, and encoded only when it involves a surrogate or a unit above them.
 */
export function compareUtf8Names(a: string, b: string): number {
  if (a === b) return 0;
  const n0 = Math.min(a.length, b.length);
  let i = 0;
  while (i < n0 && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  const ca = i < a.length ? a.charCodeAt(i) : -1;
  const cb = i < b.length ? b.charCodeAt(i) : -1;
  if (ca < 0xd800 && cb < 0xd800) return ca - cb;
  const x = nameEncoder.encode(a);
  const y = nameEncoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** The partition a stored key names (`a/<6 digits>`, then nothing or `/<record>`), or -1 when it names none of `count`. */
export function partitionNamedBy(key: string, count: number): number {
  const n = digitsAt(key, KEYS.partitionPrefix.length, 6);
  return n < count ? n : -1;
}

/** One partition's stored keys as they arrive (PartitionLoader). */
interface StoredPartition {
  keys: string[];
  base?: Uint8Array;
  records: Array<[string, Uint8Array]>;
  bad?: string;
}

/** What recovery's first step decoded, for its second (beginRecovery, finishRecovery). */
export interface RecoveryStep {
  /** Every stored record outside the partitions, by key. */
  readonly byKey: Map<string, Uint8Array>;
  /** Reads the partitions when the stored checkpoint record is usable; undefined: none are read. */
  readonly partitions: PartitionLoader | undefined;
  /** The checkpoint record, its membership and client table, decoded (when `partitions` is set). */
  readonly state?: { st: { seq: number; digest: Uint8Array; clients: Uint8Array; membership: Uint8Array }; membership: Membership; table: ClientTable };
  /** Why the stored application state cannot be used, as far as the first step can tell. */
  readonly unusable?: string;
}

function corrupt(rs: ReplicaState, what: string): void {
  rs.events.push({ type: 'stored-state-corrupt', seq: rs.lastExecuted, reason: what });
}

/**
 * Restart, first step: every stored record outside the application partitions and their records
 * (`byKey`: the view, the configurations, the stable certificate, the checkpoint record, the log).
 * Decides whether the partitions are read at all (the checkpoint record they belong to is usable);
 * the caller then gives `partitions` the records range's keys, then the partitions' keys in order,
 * and calls finishRecovery.
 */
export function beginRecovery(rs: ReplicaState, byKey: Map<string, Uint8Array>): RecoveryStep {
  const viewBytes = byKey.get(KEYS.view);
  if (viewBytes) {
    const v = decodeViewState(viewBytes);
    if (v.ok) {
      rs.view = v.value.view;
      rs.viewStatus = v.value.viewChanging ? 'view-change' : 'normal';
      rs.timers.viewChange.attempts = v.value.attempts;
    } else corrupt(rs, 'view state');
  }
  // Configurations proven earlier (each was checked when stored), in epoch order.
  const proofs = [...byKey].filter(([k]) => k.startsWith(KEYS.epochProofPrefix)).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [key, value] of proofs) {
    const p = decodeEpochProof(value);
    const m = p.ok ? decodeMembership(p.value.membership) : undefined;
    if (!p.ok || !m?.ok) {
      corrupt(rs, `epoch proof ${key}`);
      continue;
    }
    rs.epochProofs.set(p.value.epoch, p.value);
    rs.learnConfig(m.value.current);
  }
  // Application state as of our last checkpoint.
  const stateBytes = byKey.get(KEYS.checkpointState);
  // The configurations our own state knows (checked against its digest below).
  const stored = stateBytes ? decodeCheckpointState(stateBytes) : undefined;
  const storedMembership = stored?.ok ? decodeMembership(stored.value.membership) : undefined;
  if (storedMembership?.ok) {
    rs.learnConfig(storedMembership.value.current);
    if (storedMembership.value.next) rs.learnConfig(storedMembership.value.next);
  }
  const stableBytes = byKey.get(KEYS.stable);
  if (stableBytes) {
    const s = decodeCheckpointCert(stableBytes);
    if (s.ok && !rs.checkStableCert(s.value)) rs.stable = s.value;
    else corrupt(rs, 'stable checkpoint');
  }
  if (!stateBytes) return { byKey, partitions: undefined };
  const st = decodeCheckpointState(stateBytes);
  const membership = st.ok ? decodeMembership(st.value.membership) : undefined;
  const table = st.ok && membership?.ok ? ClientTable.decode(st.value.clients, (c) => mayHoldInTable(membership.value, c)) : undefined;
  if (!st.ok || !table || !membership?.ok) return { byKey, partitions: undefined, unusable: 'stored checkpoint record is malformed' };
  return { byKey, partitions: new PartitionLoader(rs), state: { st: st.value, membership: membership.value, table } };
}

/** Restart, second step: the application state from the partitions read, the log above it, and the rest. */
export function finishRecovery(rs: ReplicaState, step: RecoveryStep): void {
  const byKey = step.byKey;
  /** Why the stored application state cannot be used (undefined: it can). */
  let unusable = step.unusable;
  if (step.partitions !== undefined && step.state !== undefined) {
    const { st, membership, table } = step.state;
    const loaded = step.partitions.finish();
    if (loaded.unusable !== undefined) unusable ??= loaded.unusable;
    rs.clients.assign(table);
    rs.membership = membership;
    rs.learnConfig(membership.current);
    if (membership.next) rs.learnConfig(membership.next);
    rs.syncTree();
    rs.persistedLeaves = rs.liveTree.leaves.share();
    rs.persistedPartitions = rs.livePartitions.toArray();
    // Unreadable on disk: written again at the next stable checkpoint whatever its digest then.
    for (const index of loaded.unreadable) {
      rs.persistedPartitions[index] = undefined;
      rs.persistedLeaves.set(index, NOT_STORED);
    }
    const digest = stateDigest(rs.hash, rs.liveTree.root, st.clients, st.membership);
    rs.lastExecuted = st.seq;
    if (!bytesEqual(digest, st.digest)) unusable ??= `stored application state does not match its checkpoint digest (seq ${st.seq})`;
    else {
      rs.lastCheckpoint = { seq: st.seq, digest };
      const snap = rs.snapshotNow(st.seq, digest, st.clients, st.membership);
      rs.ownCheckpoints.set(st.seq, snap);
      if (st.seq === rs.stable.seq) rs.stableSnapshot = snap;
    }
  }
  rs.enterEpoch();
  if (rs.stable.seq > 0 && rs.stableSnapshot?.seq !== rs.stable.seq) rs.stableSnapshot = undefined;
  // The log above the stable checkpoint.
  for (const [key, value] of byKey) {
    if (!key.startsWith(KEYS.logPrefix)) continue;
    const seq = Number(key.slice(2, 18));
    if (!(seq > rs.h)) continue;
    if (key.endsWith('/s')) {
      const rec = decodeSlot(value);
      if (!rec.ok) {
        corrupt(rs, `log slot ${seq}`);
        continue;
      }
      const slot = rs.slotFor(seq);
      const r = rec.value;
      slot.view = r.view;
      slot.prePrepare = r.prePrepare;
      for (const p of r.prepares) slot.prepares.set(p.msg.replica, p);
      for (const c of r.commits) slot.commits.set(c.msg.replica, c);
      slot.cert = r.cert;
      slot.committedDigest = r.committedDigest;
      slot.commitCert = r.commitCert;
      // Whether it is prepared is decided by resumePrepared, with the normal case's rule.
    } else {
      const b = decodeBatch(value);
      if (!b.ok) {
        corrupt(rs, `log batch ${seq}`);
        continue;
      }
      // Restored without checking the client signatures (their bodies match the digest the log
      // names): checked before the batch is served to a peer (fetch.ts signedByClients).
      rs.addBatch(rs.slotFor(seq), { ...makeBatch(rs.hash, b.value.requests, b.value.time), unchecked: true });
    }
  }
  for (const [key, value] of byKey) {
    if (!key.startsWith(KEYS.checkpointVotePrefix)) continue;
    const v = decodePair(value, 'checkpoint');
    if (v.ok && v.value.msg.seq > rs.h) {
      let votes = rs.checkpointVotes.get(v.value.msg.seq);
      if (!votes) rs.checkpointVotes.set(v.value.msg.seq, (votes = new Map()));
      votes.set(v.value.msg.replica, v.value);
      if (v.value.msg.replica === rs.id && v.value.msg.seq > (rs.ownCheckpointFrame?.seq ?? -1)) {
        rs.ownCheckpointFrame = { seq: v.value.msg.seq, frame: rs.frames.encodeSignedFrame(v.value) };
      }
    }
  }
  for (const [key, value] of byKey) {
    if (!key.startsWith(KEYS.viewChangePrefix)) continue;
    const vc = decodePair(value, 'viewchange');
    if (!vc.ok || vc.value.msg.replica !== rs.id) {
      corrupt(rs, `own view-change ${key}`);
      continue;
    }
    const frame = rs.frames.encodeSignedFrame(vc.value);
    rs.ownViewChangeFrames.set(vc.value.msg.view, frame);
    if (rs.viewChanging && vc.value.msg.view === rs.view) {
      rs.storeViewChange(vc.value);
      rs.ownViewChangeFrame = frame;
    }
  }
  // Equivocation evidence we kept (evidence.ts): verified when it was written.
  for (const [key, value] of byKey) {
    if (!key.startsWith(KEYS.evidencePrefix)) continue;
    const e = decodeVoteEvidence(value);
    if (e.ok) rs.evidence.add(e.value);
    else corrupt(rs, `equivocation evidence ${key}`);
  }
  const floorBytes = byKey.get(KEYS.floor);
  if (floorBytes) {
    const f = decodeSignFloor(floorBytes);
    if (f.ok) rs.floor = f.value;
    else throw new ProtocolInvariantError(`the recovering record is damaged (${f.reason})`);
  }
  const nvBytes = byKey.get(KEYS.newView);
  if (nvBytes && !rs.viewChanging) {
    const nv = decodePair(nvBytes, 'newview');
    if (nv.ok && nv.value.msg.view === rs.view) {
      rs.newViewFrame = rs.frames.encodeSignedFrame(nv.value);
      rs.newViewAhead = nv.value.msg.prePrepares.filter((pp) => pp.msg.seq > rs.h + rs.opts.windowSize);
    }
  }
  // A primary never reuses a sequence number it assigned in this view: those of its slots, and those
  // its NEW-VIEW re-proposed above its window (installed as the window moves). Without the latter, a
  // restarted primary whose window then moved (a checkpoint, a state transfer) proposed new batches
  // at sequence numbers its NEW-VIEW had already assigned (simulator seed 103, n=4).
  let maxSeq = Math.max(rs.h, rs.lastExecuted);
  for (const slot of rs.slots.values()) if (slot.prePrepare && slot.seq > maxSeq) maxSeq = slot.seq;
  for (const pp of rs.newViewAhead) if (pp.msg.seq > maxSeq) maxSeq = pp.msg.seq;
  rs.nextSeq = maxSeq + 1;
  rs.dirtySlots.clear();
  const needTransfer = unusable !== undefined;
  if (needTransfer || rs.lastExecuted < rs.h) {
    if (unusable) corrupt(rs, unusable);
    rs.lastExecuted = Math.min(rs.lastExecuted, rs.h);
    rs.startTransfer(rs.stable, needTransfer ? 'stored state corrupt' : 'stored state older than the stable checkpoint');
    return;
  }
  rs.executeReady();
}
