/**
 * Safety and liveness checkers of the simulator. They run as things happen (the cluster calls them
 * when an effect leaves a replica or becomes durable, and after every step), not only at the end:
 *
 * - agreement: no two correct replicas commit, or execute, different batches at one sequence number
 *   (commits and executions are reported once the writes that record them are durable);
 * - durability (src/core/durability.ts): a COMMIT, CHECKPOINT, VIEW-CHANGE or NEW-VIEW leaves a
 *   correct replica only when its simulated disk holds it; a PRE-PREPARE or PREPARE only when the
 *   horizon record on its disk covers its view and sequence number (rule 1a: its own write may come
 *   later, or be lost in a crash); a restarted replica signs no PRE-PREPARE, PREPARE or COMMIT in the
 *   range the horizon record on its disk gave at the restart (views up to the recorded view, sequence
 *   numbers up to the recorded stable checkpoint + L) other than those its disk then held; a reply
 *   leaves only when the result is decided: every sequence number up to the one that
 *   produced it is covered by a stable checkpoint or by COMMITs that f+1 correct replicas hold on
 *   their disks (with the prepared certificate they imply, so that every view-change quorum
 *   preserves it);
 * - replies: no two correct replicas (or one, across crashes) sign different results for one
 *   (client, timestamp); a result a client accepted is the one correct replicas signed and executed;
 * - prepared: two correct replicas never prepare (send COMMITs for) different digests at one (view, seq);
 * - no equivocation: a correct replica never signs two different PRE-PREPAREs, PREPAREs or COMMITs
 *   for one (view, seq), two CHECKPOINTs for one seq, or two VIEW-CHANGEs or NEW-VIEWs for one view,
 *   across crashes and damaged disks too (a wiped replica starts over as a new one);
 * - checkpoints: stable checkpoint digests agree;
 * - determinism: correct replicas executing the same batch produce byte-identical results;
 * - validity: only requests a client signed are executed, each (client, timestamp) at most once;
 * - no regression: a correct replica's view and executed sequence number never go back;
 * - batch time: correct replicas execute each sequence number with the same agreed time, never
 *   below the previous one's, and never further ahead of the executing replica's clock than the
 *   backups' bound allows (batchTimeSlackMs: the bound plus the spread of the clocks' skews);
 * - sequential model: every executed result, and every result a client accepted, equals what one
 *   sequential key-value store gives for the agreed order;
 * - evidence: every piece of equivocation evidence a correct replica or client holds verifies (with
 *   the verifier of `pbft evidence verify`, through the file format) and names a faulty replica: a
 *   byzantine one, or one whose disk was wiped (it forgot what it signed); never a correct one;
 * - liveness (checked by the cluster): after faults stop, every request is answered within a bound.
 */
import { decodeOp, encodeResult } from '../app/kv-ops.ts';
import { readReplyOf, refusalOf, replyOf } from '../client/request.ts';
import { decodeCbor } from '../codec/cbor.ts';
import { decodeBody, decodeFrame } from '../codec/messages.ts';
import { bytesEqual, toHex } from '../core/auth.ts';
import type { ExecutedRequest } from '../core/replica.ts';
import { EVIDENCE_KINDS, type Evidence, type EvidenceKind, type EvidenceVerdict } from '../core/evidence.ts';
import type { SimClient } from './client.ts';
import type { SimDisk } from './disk.ts';
import { KvModel } from './kv-model.ts';
import { decodeCleanToken, decodeHorizon } from '../core/horizon.ts';
import { KEYS } from '../core/persist.ts';

/**
 * Signed messages a replica must hold on its disk before they leave it (durability.ts, rule 1), or,
 * for PRE-PREPAREs and PREPAREs, the horizon that covers them (rule 1a).
 */
const DURABLE_TYPES = new Set(['preprepare', 'prepare', 'commit', 'checkpoint', 'viewchange', 'newview']);

export type ViolationKind = 'correctness' | 'liveness' | 'crash';

export interface Violation {
  kind: ViolationKind;
  check: string;
  detail: string;
  tick: number;
}

interface OrderEntry {
  digest: string;
  requests: ExecutedRequest[];
  replica: number;
}

export class Checker {
  readonly violations: Violation[] = [];
  /** The agreed order: seq -> the first correct execution seen. */
  readonly order = new Map<number, OrderEntry>();
  private readonly executedAt = new Map<string, number>();
  /** Progress of each correct replica's current incarnation, and the floor it made durable. */
  private readonly progress = new Map<number, { incarnation: number; view: number; executed: number }>();
  private readonly durable = new Map<number, { view: number; executed: number }>();
  requestsExecuted = 0;
  /** seq -> digest committed (durably) by a correct replica, and by whom first. */
  private readonly committed = new Map<number, { digest: string; replica: number }>();
  /** Sequence numbers known to be decided (see decided()). */
  private readonly decidedSeqs = new Set<number>();
  /** The last frame checked by onSent (a broadcast hands the same frame to every recipient). */
  private lastSent?: { frame: Uint8Array; replica: number; ok: boolean };
  /** Highest stable checkpoint a correct replica holds durably, and the digest of each. */
  private stableKnown = 0;
  private readonly stableDigests = new Map<number, string>();
  /** "client:timestamp" -> the result correct replicas signed (the first one seen), and who. */
  private readonly signedResults = new Map<string, { result: Uint8Array; replica: number }>();
  /** "client:timestamp" -> the result of its execution in the agreed order. */
  private readonly executedResults = new Map<string, Uint8Array>();
  /** Replicas whose disk was wiped: they forgot what they signed (they count as faulty until caught up). */
  private readonly forgetful = new Set<number>();
  /** "view:seq" -> the digest correct replicas prepared (their COMMITs say so), and the first of them. */
  private readonly preparedDigests = new Map<string, { digest: string; replica: number }>();
  /** What each correct replica signed, by statement: "replica:type:view:seq" -> digest (or body hash). */
  private readonly statements = new Map<string, string>();
  /** Counts of what the output checks looked at (proof that they ran). */
  readonly checked = { messages: 0, replies: 0, accepted: 0, readReplies: 0 };
  /** Equivocation evidence produced (by correct replicas and clients), by kind; and against wiped replicas. */
  readonly evidence: Record<EvidenceKind, number> & { againstWiped: number } = { ...(Object.fromEntries(EVIDENCE_KINDS.map((k) => [k, 0])) as Record<EvidenceKind, number>), againstWiped: 0 };
  /** Replicas named by the evidence. */
  readonly evidenceSigners = new Set<number>();

  /** The log window L of the replicas (what a horizon's stable checkpoint bounds: rule 1a). */
  windowSize = Infinity;
  /** Restarted replicas: the range they abstain in (from the horizon on disk at the restart) and the votes their disk then held. */
  private readonly abstaining = new Map<number, { view: number; seq: number; held: Set<string> }>();
  private horizonCache?: { bytes: Uint8Array; view: number; stable: number; clean?: number };

  /**
   * A correct replica starts (or restarts) on `disk`. After a clean stop (a record with the token
   * its database holds: horizon.ts, `clean`) it does not abstain, and the stop's claim is checked
   * directly: every vote it sent that its disk does not supersede is on its disk.
   */
  onBoot(replica: number, disk: SimDisk, tick: number): void {
    const h = this.horizonOf(disk);
    const token = disk.data.get(KEYS.cleanStop);
    const t = token === undefined ? undefined : decodeCleanToken(token);
    const clean = h?.clean !== undefined && t?.ok === true && t.value === h.clean;
    if (h === undefined || clean) this.abstaining.delete(replica);
    else this.abstaining.set(replica, { view: h.view, seq: h.stable + this.windowSize, held: disk.ownVotes() });
    if (!clean) return;
    const held = disk.ownVotes();
    for (const [key, digest] of this.statements) {
      const [signer, type, view, seq] = key.split(':');
      if (Number(signer) !== replica || (type !== 'preprepare' && type !== 'prepare' && type !== 'commit')) continue;
      if (Number(seq) <= disk.stableSeq || Number(view) < disk.view) continue;
      if (!held.has(`${type}:${view}:${seq}:${digest}`)) {
        this.violation('correctness', 'clean-stop-lost-vote', `replica ${replica} restarts after a clean stop without its ${type} (view ${view}, seq ${seq}) on disk: it would not abstain, and may sign another`, tick);
        return;
      }
    }
  }

  private horizonOf(disk: SimDisk): { view: number; stable: number; clean?: number } | undefined {
    const bytes = disk.horizon;
    if (bytes === undefined) return undefined;
    if (this.horizonCache?.bytes !== bytes) {
      const h = decodeHorizon(bytes);
      if (!h.ok) return undefined;
      this.horizonCache = { bytes, view: h.value.view, stable: h.value.stable, ...(h.value.clean !== undefined ? { clean: h.value.clean } : {}) };
    }
    return this.horizonCache;
  }

  constructor(
    private readonly f: number,
    private readonly issuedBy: (client: number, timestamp: number) => Uint8Array[] | undefined,
  ) {}

  /** How far ahead of a correct replica's clock an agreed batch time may be (see onBatchTime). */
  batchTimeSlackMs = Infinity;
  /** seq -> the agreed time it was first executed with by a correct replica, and by whom. */
  private readonly batchTimes = new Map<number, { timeMs: number; replica: number }>();

  /**
   * A correct replica executed `seq` with agreed time `timeMs` while its clock read `clockMs`.
   * A batch time is accepted by correct backups only within batchTimeAheadMsMax of their clocks, and
   * execution comes after that (clocks only move forward), so a time further ahead than the slack
   * means a backup prepared a time it should have refused.
   */
  onBatchTime(replica: number, seq: number, timeMs: number, clockMs: number, tick: number): void {
    const prev = this.batchTimes.get(seq);
    if (prev && prev.timeMs !== timeMs) {
      this.violation('correctness', 'batch-time-agreement', `seq ${seq}: replica ${replica} executed with time ${timeMs}, replica ${prev.replica} with ${prev.timeMs}`, tick);
      return;
    }
    if (!prev) this.batchTimes.set(seq, { timeMs, replica });
    const before = this.batchTimes.get(seq - 1);
    if (before && before.timeMs > timeMs) {
      this.violation('correctness', 'batch-time-monotonic', `seq ${seq}: agreed time ${timeMs} below seq ${seq - 1}'s ${before.timeMs}`, tick);
    }
    if (timeMs > clockMs + this.batchTimeSlackMs) {
      this.violation('correctness', 'batch-time-ahead', `seq ${seq}: replica ${replica} executed with time ${timeMs}, ${timeMs - clockMs} ms ahead of its clock (slack ${this.batchTimeSlackMs} ms)`, tick);
    }
  }

  /**
   * Checks whose violations are not recorded: only for negative controls that show a broken build is
   * also caught by the checks that remain (e.g. by agreement, not only by the durability rule).
   */
  readonly ignoredChecks = new Set<string>();

  violation(kind: ViolationKind, check: string, detail: string, tick: number): void {
    if (this.ignoredChecks.has(check)) return;
    if (this.violations.length < 50) this.violations.push({ kind, check, detail, tick });
  }

  onExecuted(replica: number, seq: number, digest: Uint8Array, requests: ExecutedRequest[], tick: number): void {
    const hex = toHex(digest);
    const prev = this.order.get(seq);
    if (prev) {
      if (prev.digest !== hex) {
        this.violation('correctness', 'agreement', `seq ${seq}: replica ${replica} executed ${hex.slice(0, 12)}, replica ${prev.replica} executed ${prev.digest.slice(0, 12)}`, tick);
        return;
      }
      if (prev.requests.length !== requests.length) {
        this.violation('correctness', 'determinism', `seq ${seq}: replicas ${prev.replica} and ${replica} executed different request sets`, tick);
        return;
      }
      for (let i = 0; i < requests.length; i++) {
        const a = prev.requests[i]!;
        const b = requests[i]!;
        if (a.client !== b.client || a.timestamp !== b.timestamp || !bytesEqual(a.result, b.result)) {
          this.violation('correctness', 'determinism', `seq ${seq}: replicas ${prev.replica} and ${replica} produced different results`, tick);
          return;
        }
      }
      return;
    }
    this.order.set(seq, { digest: hex, requests, replica });
    for (const r of requests) {
      this.requestsExecuted++;
      const key = `${r.client}:${r.timestamp}`;
      this.executedResults.set(key, r.result);
      const other = this.executedAt.get(key);
      if (other !== undefined && other !== seq) {
        this.violation('correctness', 'at-most-once', `request ${key} executed at seq ${other} and ${seq}`, tick);
      }
      this.executedAt.set(key, seq);
      const issued = this.issuedBy(r.client, r.timestamp);
      if (!issued || !issued.some((op) => bytesEqual(op, r.op))) {
        this.violation('correctness', 'validity', `request ${key} at seq ${seq} was not signed by its client`, tick);
      }
    }
  }

  /** A correct replica's commit of `digest` at `seq` became durable. */
  onCommitted(replica: number, seq: number, digest: Uint8Array, tick: number): void {
    const hex = toHex(digest);
    const prev = this.committed.get(seq);
    if (!prev) this.committed.set(seq, { digest: hex, replica });
    else if (prev.digest !== hex) {
      this.violation('correctness', 'agreement', `seq ${seq}: replica ${replica} committed ${hex.slice(0, 12)}, replica ${prev.replica} committed ${prev.digest.slice(0, 12)}`, tick);
    }
  }

  /** A correct replica's stable checkpoint became durable. */
  onStable(replica: number, seq: number, digest: Uint8Array, tick: number): void {
    const hex = toHex(digest);
    const prev = this.stableDigests.get(seq);
    if (prev === undefined) this.stableDigests.set(seq, hex);
    else if (prev !== hex) this.violation('correctness', 'stable-checkpoint', `seq ${seq}: replica ${replica} holds stable digest ${hex.slice(0, 12)}, another ${prev.slice(0, 12)}`, tick);
    if (seq > this.stableKnown) this.stableKnown = seq;
  }

  /** A frame leaves correct replica `replica` for another replica; `disk` is its simulated disk. */
  onSent(replica: number, frame: Uint8Array, disk: SimDisk, tick: number): void {
    if (this.lastSent && this.lastSent.frame === frame && this.lastSent.replica === replica) return;
    this.lastSent = { frame, replica, ok: true };
    // Only the signed envelope matters here: skip link frames, and do not decode a pre-prepare's batch.
    if (frame[1] !== 0) return;
    const outer = decodeCbor(frame);
    if (!outer.ok || !Array.isArray(outer.value) || !(outer.value[1] instanceof Uint8Array) || !(outer.value[2] instanceof Uint8Array)) return;
    const body = decodeBody(outer.value[1]);
    if (!body.ok) return;
    const m = body.value;
    const signed = { msg: m, body: outer.value[1], sig: outer.value[2] };
    if (!DURABLE_TYPES.has(m.type) || !('replica' in m) || m.replica !== replica) return;
    this.checked.messages++;
    // Superseded statements need no record of their own: a vote for a sequence number at or below the
    // stable checkpoint on disk, or a message of a view older than the view on disk (the replica never
    // signs in that view again; its prepared certificates are kept apart from the votes).
    const covered = ('seq' in m && m.seq <= disk.stableSeq) || ('view' in m && m.view < disk.view);
    if (m.type === 'preprepare' || m.type === 'prepare') {
      // Rule 1a: the horizon record on disk covers its view and window, and the view record says the
      // replica entered the view (for a primary: its NEW-VIEW is on disk).
      const h = this.horizonOf(disk);
      const entered = disk.view > m.view || (disk.view === m.view && !disk.viewChanging);
      if (!covered && (h === undefined || h.view < m.view || m.seq > h.stable + this.windowSize || !entered)) {
        const on = h === undefined ? 'no horizon record' : `horizon view ${h.view}, stable ${h.stable}; view record ${disk.view}${disk.viewChanging ? ' (changing)' : ''}`;
        this.violation('correctness', 'sent-before-durable', `replica ${replica} sent its ${m.type} (view ${m.view}, seq ${m.seq}) before its disk covered it (${on})`, tick);
      }
    } else if (!covered && !disk.holds(signed as Parameters<SimDisk['holds']>[0])) {
      const where = 'seq' in m ? `seq ${m.seq}` : 'view' in m ? `view ${m.view}` : '';
      this.violation('correctness', 'sent-before-durable', `replica ${replica} sent its ${m.type} (${where}) before its disk held it`, tick);
    }
    if (m.type === 'newview') {
      // Its pre-prepares are signed under rule 1 (the NEW-VIEW is on disk, and a second, different
      // NEW-VIEW for the view is an equivocation): the primary may resend them on their own.
      const a = this.abstaining.get(replica);
      if (a !== undefined) for (const pp of m.prePrepares) a.held.add(`preprepare:${pp.msg.view}:${pp.msg.seq}:${toHex(pp.msg.digest)}`);
    }
    if (m.type === 'preprepare' || m.type === 'prepare' || m.type === 'commit') {
      // Rule 1a: after a restart, no vote in the range where an earlier incarnation's may have been lost.
      const a = this.abstaining.get(replica);
      if (a !== undefined && m.view <= a.view && m.seq <= a.seq && !a.held.has(`${m.type}:${m.view}:${m.seq}:${toHex(m.digest)}`)) {
        this.violation('correctness', 'abstained-vote', `replica ${replica} signed a ${m.type} (view ${m.view}, seq ${m.seq}) after a restart, in the range it abstains in (views <= ${a.view}, seqs <= ${a.seq})`, tick);
      }
    }
    // The statement and what it says; a second, different one is an equivocation.
    let key: string;
    let says: string;
    switch (m.type) {
      case 'preprepare':
      case 'prepare':
      case 'commit':
        key = `${replica}:${m.type}:${m.view}:${m.seq}`;
        says = toHex(m.digest);
        break;
      case 'checkpoint':
        key = `${replica}:checkpoint:${m.seq}`;
        says = toHex(m.digest);
        break;
      default:
        key = `${replica}:${m.type}:${'view' in m ? m.view : ''}`;
        says = toHex(signed.body);
    }
    // PBFT's invariant of "prepared": two correct replicas never prepare different digests for one
    // (view, seq), and a COMMIT says its sender prepared.
    if (m.type === 'commit' && !this.forgetful.has(replica)) {
      const slot = `${m.view}:${m.seq}`;
      const prepared = this.preparedDigests.get(slot);
      if (prepared === undefined) this.preparedDigests.set(slot, { digest: says, replica });
      else if (prepared.digest !== says) {
        this.violation('correctness', 'prepared-conflict', `view ${m.view} seq ${m.seq}: replicas ${prepared.replica} and ${replica} prepared different digests`, tick);
      }
    }
    const before = this.statements.get(key);
    if (before === undefined) this.statements.set(key, says);
    else if (before !== says) this.violation('correctness', 'equivocation', `replica ${replica} signed two different ${m.type} messages (${key.split(':').slice(2).join(', ')})`, tick);
  }

  /**
   * A correct replica or client (`holder`) now holds equivocation evidence, `verdict` being what
   * `pbft evidence verify` says of it. It must verify, and its signer must be faulty: byzantine
   * (`signerFaulty`) or wiped (it forgot what it signed and counts as faulty until caught up).
   */
  onEvidence(holder: string, e: Evidence, verdict: EvidenceVerdict, signerFaulty: boolean, tick: number): void {
    this.evidence[e.kind]++;
    this.evidenceSigners.add(e.signer);
    if (!verdict.ok) {
      this.violation('correctness', 'evidence-invalid', `${holder} holds ${e.kind} evidence against replica ${e.signer} that does not verify: ${verdict.reason}`, tick);
      return;
    }
    if (signerFaulty) return;
    if (this.forgetful.has(e.signer)) {
      this.evidence.againstWiped++;
      return;
    }
    this.violation('correctness', 'evidence-against-correct', `${holder} holds verified ${e.kind} evidence against correct replica ${e.signer}: ${verdict.verdict}`, tick);
  }

  /**
   * True when f+1 correct replicas durably stand behind one digest at `seq` (their own COMMIT or
   * prepared certificate is on their disks): every view-change quorum of 2f+1 then carries it.
   */
  private decided(seq: number, disks: readonly SimDisk[]): boolean {
    if (this.decidedSeqs.has(seq)) return true;
    const count = new Map<string, number>();
    for (const disk of disks) {
      for (const digest of new Set(disk.preparedAt(seq))) {
        const c = (count.get(digest) ?? 0) + 1;
        count.set(digest, c);
        if (c >= this.f + 1) {
          this.decidedSeqs.add(seq);
          return true;
        }
      }
    }
    return false;
  }

  /**
   * A reply leaves correct replica `replica`; `seq` produced its result and `stable` is the replica's
   * stable checkpoint; `disks` are the disks of the correct replicas. The result must be decided,
   * and the same as every other correct replica's.
   */
  onReplySent(replica: number, frame: Uint8Array, seq: number, stable: number, disks: readonly SimDisk[], tick: number): void {
    const d = decodeFrame(frame);
    if (d.ok && refusalOf(d.value)) return;
    // The answer to a client's epochsreq: proofs the client verifies itself (src/client/follow.ts).
    if (d.ok && d.value.kind === 'link' && d.value.msg.type === 'epochs') return;
    // The answer to a read-only request: computed on the state after `seq`, so it waits like a reply
    // to a request executed at `seq` (what it returns is judged by linearizability, test/sim/reads.test.ts).
    const read = d.ok ? readReplyOf(d.value) : undefined;
    if (read) {
      this.checked.readReplies++;
      for (let s = Math.max(stable, this.stableKnown) + 1; s <= seq; s++) {
        if (!this.decided(s, disks)) {
          this.violation('correctness', 'reply-before-decided', `replica ${replica} answered read ${read.msg.client}:${read.msg.timestamp} on the state after seq ${seq} while fewer than f+1 correct replicas held a COMMIT for seq ${s} on disk`, tick);
          return;
        }
      }
      return;
    }
    const reply = d.ok ? replyOf(d.value) : undefined;
    if (!reply) return this.violation('correctness', 'reply', `replica ${replica} sent a frame to a client that is neither a reply, a refusal nor epoch proofs`, tick);
    this.checked.replies++;
    const m = reply.msg;
    const key = `${m.client}:${m.timestamp}`;
    const prev = this.signedResults.get(key);
    if (!prev) this.signedResults.set(key, { result: m.result, replica });
    else if (!bytesEqual(prev.result, m.result)) {
      this.violation('correctness', 'reply-conflict', `request ${key}: replica ${replica} signed a result that differs from the one replica ${prev.replica} signed`, tick);
    }
    for (let s = Math.max(stable, this.stableKnown) + 1; s <= seq; s++) {
      if (!this.decided(s, disks)) {
        this.violation('correctness', 'reply-before-decided', `replica ${replica} replied to ${key} (seq ${seq}) while fewer than f+1 correct replicas held a COMMIT for seq ${s} on disk`, tick);
        return;
      }
    }
  }

  /** A client accepted `result` for its request: it must be what correct replicas signed and executed. */
  onAccepted(client: number, timestamp: number, result: Uint8Array, tick: number): void {
    this.checked.accepted++;
    const key = `${client}:${timestamp}`;
    const signed = this.signedResults.get(key);
    if (signed && !bytesEqual(signed.result, result)) {
      this.violation('correctness', 'client-result', `client accepted a result for ${key} that differs from the one correct replica ${signed.replica} signed`, tick);
    }
    const executed = this.executedResults.get(key);
    if (executed && !bytesEqual(executed, result)) this.violation('correctness', 'client-result', `client accepted a result for ${key} that differs from its execution`, tick);
  }

  /**
   * Called after every step for each running correct replica. Within an incarnation its view and
   * executed sequence number never go back; across a crash they never fall below what it had made
   * durable (reported with `onDurable`). A replica restarted behind a stable checkpoint waits for
   * state transfer (it executes and signs nothing meanwhile); its execution is compared again once it
   * executes.
   */
  onProgress(replica: number, incarnation: number, view: number, lastExecuted: number, transferring: boolean, tick: number): void {
    let p = this.progress.get(replica);
    if (!p || p.incarnation !== incarnation) {
      p = { incarnation, view: 0, executed: 0 };
      this.progress.set(replica, p);
    }
    const floor = this.durable.get(replica) ?? { view: 0, executed: 0 };
    const viewMin = Math.max(p.view, floor.view);
    if (view < viewMin) this.violation('correctness', 'view-regression', `replica ${replica} view ${viewMin} -> ${view}`, tick);
    p.view = Math.max(p.view, view);
    if (transferring) return;
    const executedMin = Math.max(p.executed, floor.executed);
    if (lastExecuted < executedMin) this.violation('correctness', 'execution-regression', `replica ${replica} executed ${executedMin} -> ${lastExecuted}`, tick);
    p.executed = Math.max(p.executed, lastExecuted);
  }

  /** What a correct replica has made durable: a view it moved to, a sequence number it executed. */
  onDurable(replica: number, progress: { view?: number; executed?: number }): void {
    const d = this.durable.get(replica) ?? { view: 0, executed: 0 };
    if (progress.view !== undefined && progress.view > d.view) d.view = progress.view;
    if (progress.executed !== undefined && progress.executed > d.executed) d.executed = progress.executed;
    this.durable.set(replica, d);
  }

  /**
   * A replica whose disk was damaged or replaced: its progress is measured afresh. `forgets`: a wiped
   * replica is a new one (it counts as faulty until it caught up), so what it signed before is forgotten
   * too; a damaged one must still never contradict itself.
   */
  resetProgress(replica: number, forgets = true): void {
    this.progress.delete(replica);
    this.durable.delete(replica);
    if (!forgets) return;
    this.forgetful.add(replica);
    for (const key of [...this.statements.keys()]) if (key.startsWith(`${replica}:`)) this.statements.delete(key);
  }

  /** Replays the agreed order on a sequential model; compares executed and accepted results. */
  finish(clients: readonly SimClient[], tick: number): { modelled: number; gaps: number } {
    const model = new KvModel();
    const expected = new Map<string, Uint8Array>();
    const maxSeq = Math.max(0, ...this.order.keys());
    let gaps = 0;
    for (let seq = 1; seq <= maxSeq; seq++) {
      const entry = this.order.get(seq);
      if (!entry) {
        gaps++;
        // Without this batch the model cannot follow the state; stop comparing from here.
        break;
      }
      for (const r of entry.requests) {
        const op = decodeOp(r.op);
        const result = op.ok ? encodeResult(model.apply(op.value)) : undefined;
        if (result && !bytesEqual(result, r.result)) {
          this.violation('correctness', 'sequential-model', `seq ${seq}: request ${r.client}:${r.timestamp} result differs from the model`, tick);
        }
        expected.set(`${r.client}:${r.timestamp}`, r.result);
      }
    }
    for (const c of clients) {
      for (const done of c.completed) {
        // A read answered unordered was never executed: judged by linearizability, not by the order.
        if (done.unordered) continue;
        const key = `${done.client}:${done.timestamp}`;
        const exp = expected.get(key);
        if (!exp) {
          if (gaps === 0) this.violation('correctness', 'client-result', `client accepted a result for ${key}, which no correct replica executed`, tick);
        } else if (!bytesEqual(exp, done.result)) {
          this.violation('correctness', 'client-result', `client accepted a wrong result for ${key}`, tick);
        }
      }
      for (const fail of c.failed) {
        this.violation('correctness', 'client-fail', `client ${fail.client} got FAIL for ts ${fail.timestamp} with at most f faulty replicas`, tick);
      }
    }
    return { modelled: expected.size, gaps };
  }
}
