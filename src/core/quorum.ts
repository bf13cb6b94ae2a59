/**
 * The vote thresholds of PBFT with n = 3f+1 replicas (and n = 3f+2, 3f+3 after a reconfiguration,
 * where "2f+1" below reads ceil((n+f+1)/2)), written once (Castro & Liskov, TOCS 2002 §2.3;
 * etcd-io/raft keeps its majority rule apart from the protocol in the same way), and the rules that
 * count votes with them:
 *
 *   prepared         a PRE-PREPARE and `prepares` (2f) matching PREPAREs from distinct backups
 *   committed-local  prepared, and `commits` (2f+1) matching COMMITs from distinct replicas
 *   commit cert      `commits` (2f+1) matching COMMITs from distinct replicas (a fetched entry)
 *   stable           `checkpoints` (2f+1) matching CHECKPOINTs from distinct replicas
 *   new view         `viewChanges` (2f+1) VIEW-CHANGEs for one view from distinct replicas
 *   join             `join` (f+1) replicas in views above ours: at least one of them is correct
 *   suspected        `suspicions` (f+1) replicas suspect the primary of our view: one is correct
 *   read-only        `reads` (2f+1) matching answers to a read-only request (the client's rule,
 *                    src/client/collector.ts ReadCollector; why not f+1: src/core/reads.ts)
 *
 * Any two sets of 2f+1 replicas share at least f+1, of which at least one is correct; that is what
 * every rule above rests on. Nothing else in src/core writes a threshold.
 *
 * The crash-fault mode (FaultModel 'crash', n = 2f+1: replicas crash, restart and get cut off, but
 * never lie; the Paxos / Raft setting) runs the same rules with other numbers, chosen here:
 *
 *   f                floor((n-1)/2): a majority must survive.
 *   strong quorums   prepared (the PRE-PREPARE and f PREPAREs), committed-local, commit cert,
 *                    stable, new view and read-only: a majority, floor(n/2)+1 (f+1 of 2f+1). Any two
 *                    majorities share a replica, and with no liars one shared replica is enough: it
 *                    carries what the earlier quorum did (its prepared certificate into the view
 *                    change, its executed state into a read). The byzantine rule needs f+1 shared
 *                    replicas only so that one of them is correct.
 *   join, suspected  f+1, as in the byzantine mode. Every replica is correct here, so one would be
 *                    enough to know the view is real; f+1 is kept because these are the pre-vote: a
 *                    replica that can send but not receive (or whose clock runs fast) must not push
 *                    the others into view changes alone, and that hazard is a crash-mode one too.
 *                    f+1 <= n-f, so the f replicas that may be down cannot block them.
 *   client replies   f+1 matching in the byzantine mode; ONE reply in the crash mode. A replica
 *                    that lies is not in the model, and a correct one replies only after executing
 *                    the request with a commit certificate (a majority M had PREPARED it, durably),
 *                    so its result is the agreed one. Reads stay linearizable with that: any f+1
 *                    read answers include a replica of M, which holds a read until it has executed
 *                    what it prepared (reads.ts), exactly the byzantine argument with one shared
 *                    replica instead of one correct among f+1.
 *
 * Each strong quorum is at most n-f in both modes, so the f faulty replicas cannot block progress.
 */
import { bytesEqual } from './encoding.ts';
import type { FaultModel } from './cluster.ts';
import type { CommitMsg, PrepareMsg, PrePrepareMsg, PreparedCert, Signed } from './messages.ts';

export interface Quorum {
  readonly n: number;
  readonly f: number;
  /** The fault model the thresholds are for. */
  readonly model: FaultModel;
  /** PREPAREs (besides the PRE-PREPARE) that make a replica prepared. */
  readonly prepares: number;
  /** COMMITs that make a prepared request committed-local, and a commit certificate. */
  readonly commits: number;
  /** CHECKPOINTs that make a checkpoint stable. */
  readonly checkpoints: number;
  /** VIEW-CHANGEs a NEW-VIEW needs. */
  readonly viewChanges: number;
  /** Replicas in views above ours that make a replica join the smallest of those views. */
  readonly join: number;
  /** Replicas suspecting the primary of a view that start its view change (the pre-vote). */
  readonly suspicions: number;
  /** Matching answers a client needs to accept the result of a read-only request (reads.ts). */
  readonly reads: number;
  /** Matching replies a client needs to accept the result of an ordered request (collector.ts). */
  readonly replies: number;
  /**
   * Backups that prepare a fresh PRE-PREPARE without checking its requests' client signatures
   * (clientSignaturesUnchecked below): `prepares` - f in the byzantine mode, none in the crash mode.
   */
  readonly signatureSkippers: number;
}

/**
 * Deliberately broken thresholds, for the simulator's negative controls only (a checker that cannot
 * catch a broken quorum proves nothing). Never set by the shell or the CLI.
 */
export interface UnsafeQuorum {
  prepares?: number;
  commits?: number;
  signatureSkippers?: number;
}

/** The largest f that n replicas tolerate in the fault model: floor((n-1)/3), crash floor((n-1)/2). */
export function faultsOf(n: number, model: FaultModel = 'byzantine'): number {
  return model === 'crash' ? Math.floor((n - 1) / 2) : Math.floor((n - 1) / 3);
}

/** The fewest replicas a configuration may have in the fault model (f = 1): 4, crash 3. */
export function replicasMin(model: FaultModel = 'byzantine'): number {
  return model === 'crash' ? 3 : 4;
}

/** Replicas per tolerated fault plus one: n = 3f+1, crash 2f+1 (for messages and keygen). */
export function replicasFor(f: number, model: FaultModel = 'byzantine'): number {
  return model === 'crash' ? 2 * f + 1 : 3 * f + 1;
}

export function quorumFor(n: number, f: number, unsafe: UnsafeQuorum = {}, model: FaultModel = 'byzantine'): Quorum {
  let strong: number;
  if (model === 'crash') {
    // Majorities: any two share a replica, and none of them lies (see the header). n = 2f+2 (after a
    // reconfiguration) keeps f and needs f+2.
    if (!Number.isInteger(f) || f < 0 || n < 2 * f + 1 || n > 2 * f + 2) throw new RangeError(`crash-mode cluster has ${n} replicas; expected 2f+1..2f+2 for f = ${f}`);
    strong = Math.floor(n / 2) + 1;
  } else {
    if (!Number.isInteger(f) || f < 0 || n < 3 * f + 1 || n > 3 * f + 3) throw new RangeError(`cluster has ${n} replicas; expected 3f+1..3f+3 for f = ${f}`);
    // Two quorums of `strong` replicas share 2*strong - n >= f+1 of them, so at least one correct
    // replica: strong = ceil((n+f+1)/2), which is 2f+1 for n = 3f+1 (n = 5, 6 keep f = 1: 4 votes).
    strong = Math.ceil((n + f + 1) / 2);
  }
  return {
    n,
    f,
    model,
    prepares: unsafe.prepares ?? strong - 1,
    commits: unsafe.commits ?? strong,
    checkpoints: strong,
    viewChanges: strong,
    join: f + 1,
    suspicions: f + 1,
    reads: strong,
    replies: model === 'crash' ? 1 : f + 1,
    signatureSkippers: unsafe.signatureSkippers ?? (model === 'crash' ? 0 : strong - 1 - f),
  };
}

/**
 * Whether replica `id` prepares the fresh PRE-PREPARE of (view, seq) without checking the client
 * signatures of its requests. Every request costs each replica one ed25519 verify, the largest
 * single item of a replica's CPU; only 2f+1 of them are needed (n - q.signatureSkippers, with the
 * primary among them), and which backups skip rotates with the sequence number so that each backup
 * saves alike.
 *
 * Why it is safe. A prepared certificate holds the PRE-PREPARE and `prepares` PREPAREs from
 * distinct replicas: `prepares` + 1 = strong replicas. The replicas that check are n - s of them,
 * s = strong - 1 - f. Any certificate and the checking set share at least strong + (n - s) - n =
 * f + 1 replicas, so at least one correct replica that checked: either a correct primary that
 * proposed only requests whose signatures it had checked, or a correct backup that checked them
 * before its PREPARE. A batch with a request its client did not sign can therefore never become
 * prepared, committed (a commit certificate holds f+1 correct replicas that prepared), executed or
 * carried into a NEW-VIEW, at any replica, skipping or not. One more skipper (s = strong - f) and a
 * byzantine primary with the skippers' PREPAREs and its own COMMIT commits a forged request at
 * them: the simulator's negative control (test/sim/client-signatures.test.ts).
 *
 * What a skipper must not do with requests it did not check: count them as checked (its verify
 * cache is not touched), or let them move its request timers (normal.ts onPrePrepare). PRE-PREPAREs
 * of a NEW-VIEW, retransmitted batches and fetched entries are checked in full, as before.
 */
export function skipsClientSignatures(q: Quorum, members: readonly number[], view: number, seq: number, id: number): boolean {
  if (q.signatureSkippers <= 0) return false;
  const n = members.length;
  const primary = view % n;
  const me = members.indexOf(id);
  if (me < 0 || me === primary || n < 2) return false;
  const backups = n - 1;
  const position = (me - primary - 1 + n) % n;
  return (position - (seq % backups) + backups) % backups < q.signatureSkippers;
}

/**
 * The prepared certificate of a slot: its PRE-PREPARE and the first `q.prepares` PREPAREs that match
 * it (same view, sequence number and digest) from distinct backups; undefined when there are fewer.
 * The one definition of "prepared", for the normal case and for recovery alike.
 */
export function preparedCertificate(
  q: Quorum,
  prePrepare: Signed<PrePrepareMsg> | undefined,
  prepares: Iterable<Signed<PrepareMsg>>,
): PreparedCert | undefined {
  if (!prePrepare) return undefined;
  const pp = prePrepare.msg;
  const matching: Signed<PrepareMsg>[] = [];
  const seen = new Set<number>();
  for (const p of prepares) {
    if (matching.length >= q.prepares) break;
    const m = p.msg;
    if (m.replica === pp.replica || seen.has(m.replica) || m.view !== pp.view || m.seq !== pp.seq || !bytesEqual(m.digest, pp.digest)) continue;
    seen.add(m.replica);
    matching.push(p);
  }
  return matching.length >= q.prepares ? { prePrepare, prepares: matching } : undefined;
}

/**
 * The COMMITs that make (view, seq, digest) committed-local: the first `q.commits` that match it from
 * distinct replicas; undefined when there are fewer. (The caller checks that the slot is prepared.)
 */
export function commitQuorum(q: Quorum, pp: PrePrepareMsg, commits: Iterable<Signed<CommitMsg>>): Signed<CommitMsg>[] | undefined {
  const matching: Signed<CommitMsg>[] = [];
  const seen = new Set<number>();
  for (const c of commits) {
    if (matching.length >= q.commits) break;
    const m = c.msg;
    if (seen.has(m.replica) || m.view !== pp.view || m.seq !== pp.seq || !bytesEqual(m.digest, pp.digest)) continue;
    seen.add(m.replica);
    matching.push(c);
  }
  return matching.length >= q.commits ? matching : undefined;
}

/** Groups votes by what they say and returns the first group that reaches `threshold`, if any. */
export function firstQuorum<T>(votes: Iterable<T>, key: (vote: T) => string, threshold: number): T[] | undefined {
  const groups = new Map<string, T[]>();
  for (const v of votes) {
    const k = key(v);
    const g = groups.get(k) ?? [];
    g.push(v);
    groups.set(k, g);
    if (g.length >= threshold) return g.slice(0, threshold);
  }
  return undefined;
}
