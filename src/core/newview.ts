/**
 * The view-change rules of PBFT (signature variant), as pure functions over verified inputs:
 * validating checkpoint and prepared certificates and VIEW-CHANGE messages, and computing the
 * pre-prepares a NEW-VIEW must carry. The new primary and every backup run the same computation,
 * so a backup rejects a NEW-VIEW whose pre-prepares differ from what the VIEW-CHANGEs imply.
 */
import type { Authenticator } from './auth.ts';
import { bytesEqual } from './auth.ts';
import type { Quorum } from './quorum.ts';
import type { CheckpointCert, PreparedCert, Signed, ViewChangeMsg } from './messages.ts';

export interface QuorumContext {
  /** The membership epoch whose configuration this context checks against (membership.ts). */
  epoch: number;
  /** The checkpoint this epoch's configuration took effect after (its certificate is the previous epoch's). */
  since: number;
  n: number;
  f: number;
  /** Replica ids of the configuration, ascending. */
  members: readonly number[];
  isMember(id: number): boolean;
  /** The previous epoch's context (for the certificate at `since`), when known. */
  previous?: QuorumContext;
  /** The last sequence number this configuration orders, once the next one is known. */
  until?: number;
  /** The thresholds (src/core/quorum.ts). */
  q: Quorum;
  checkpointInterval: number;
  windowSize: number;
  /** State digest at sequence number 0 (identical on every replica: the empty state). */
  genesisDigest: Uint8Array;
  /** Digest of the empty batch (the null request). */
  nullDigest: Uint8Array;
  auth: Authenticator;
}

/** The primary of a view: the members take turns in ascending id order. */
export const primaryOf = (view: number, members: readonly number[]): number => members[view % members.length]!;

/**
 * 2f+1 matching CHECKPOINT messages from distinct replicas (none needed for the genesis checkpoint),
 * of the configuration that ordered `seq`: the certificate's epoch, or the previous epoch for the
 * checkpoint at which an epoch began (its state already holds the new configuration, which is how
 * the new configuration is certified by the old one). `ctx` is the certificate's epoch, or the one
 * before it for a boundary certificate; any other epoch is refused (ReplicaState.checkStableCert
 * picks the context).
 */
export function checkCheckpointCert(cert: CheckpointCert, ctx: QuorumContext): string | undefined {
  if (cert.seq % ctx.checkpointInterval !== 0) return 'checkpoint seq is not a multiple of the interval';
  if (cert.seq === 0) {
    return bytesEqual(cert.digest, ctx.genesisDigest) && cert.epoch === 0 ? undefined : 'genesis checkpoint with a wrong digest';
  }
  let signers: QuorumContext = ctx;
  if (cert.epoch === ctx.epoch + 1) {
    // The checkpoint at which the next configuration began, certified by this one (an epoch proof's
    // certificate, or a replica that follows a reconfiguration it did not execute).
    if (ctx.until !== undefined ? cert.seq !== ctx.until : cert.seq <= ctx.since) return 'checkpoint is not where the next configuration began';
  } else if (cert.epoch !== ctx.epoch) {
    return cert.epoch < ctx.epoch ? 'checkpoint of an earlier configuration' : 'checkpoint of a later configuration';
  } else {
    if (cert.seq < ctx.since) return 'checkpoint below its configuration';
    if (ctx.until !== undefined && cert.seq >= ctx.until) return 'checkpoint beyond its configuration';
    if (cert.seq === ctx.since && ctx.epoch > 0) {
      if (!ctx.previous) return 'checkpoint at the start of a configuration whose predecessor is unknown';
      signers = ctx.previous;
    }
  }
  const senders = new Set<number>();
  for (const c of cert.proof) {
    const m = c.msg;
    if (m.seq !== cert.seq || !bytesEqual(m.digest, cert.digest) || m.epoch !== cert.epoch) return 'checkpoint proof does not match';
    if (!signers.isMember(m.replica) || senders.has(m.replica)) return 'checkpoint proof sender invalid or repeated';
    if (!signers.auth.verify(c)) return 'checkpoint proof with a bad signature';
    senders.add(m.replica);
  }
  return senders.size >= signers.q.checkpoints ? undefined : 'checkpoint proof has fewer than 2f+1 messages';
}

/** The pre-prepare by the primary of its view plus 2f matching prepares from distinct backups. */
export function checkPreparedCert(cert: PreparedCert, ctx: QuorumContext): string | undefined {
  const pp = cert.prePrepare.msg;
  const primary = primaryOf(pp.view, ctx.members);
  if (pp.replica !== primary) return 'prepared certificate: pre-prepare not from the primary of its view';
  if (!ctx.auth.verify(cert.prePrepare)) return 'prepared certificate: bad pre-prepare signature';
  const senders = new Set<number>();
  for (const p of cert.prepares) {
    const m = p.msg;
    if (m.view !== pp.view || m.seq !== pp.seq || !bytesEqual(m.digest, pp.digest)) {
      return 'prepared certificate: prepare does not match';
    }
    if (!ctx.isMember(m.replica) || m.replica === primary || senders.has(m.replica)) {
      return 'prepared certificate: prepare sender invalid or repeated';
    }
    if (!ctx.auth.verify(p)) return 'prepared certificate: bad prepare signature';
    senders.add(m.replica);
  }
  return senders.size >= ctx.q.prepares ? undefined : 'prepared certificate has fewer than 2f prepares';
}

/** Validates a VIEW-CHANGE (its signature and everything it carries). */
export function checkViewChange(signed: Signed<ViewChangeMsg>, ctx: QuorumContext): string | undefined {
  const vc = signed.msg;
  if (!ctx.isMember(vc.replica)) return 'view-change from an unknown replica';
  if (vc.checkpoint.epoch !== ctx.epoch) return 'view-change of another configuration';
  if (vc.view === 0) return 'view-change to view 0';
  const h = vc.checkpoint.seq;
  const seqs = new Set<number>();
  for (const cert of vc.prepared) {
    const pp = cert.prePrepare.msg;
    if (pp.view >= vc.view) return 'prepared certificate from a view not below the new view';
    if (pp.seq <= h || pp.seq > h + ctx.windowSize) return 'prepared certificate outside the window';
    if (ctx.until !== undefined && pp.seq > ctx.until) return 'prepared certificate beyond the end of its configuration';
    if (seqs.has(pp.seq)) return 'two prepared certificates for one sequence number';
    seqs.add(pp.seq);
  }
  if (!ctx.auth.verify(signed)) return 'bad view-change signature';
  const ckReason = checkCheckpointCert(vc.checkpoint, ctx);
  if (ckReason) return ckReason;
  for (const cert of vc.prepared) {
    const reason = checkPreparedCert(cert, ctx);
    if (reason) return reason;
  }
  return undefined;
}

export interface NewViewPlan {
  /** The latest stable checkpoint among the VIEW-CHANGEs (min-s) with its proof. */
  checkpoint: CheckpointCert;
  /**
   * One entry per sequence number in (min-s, max-s]: the digest to re-propose and the batch time
   * its pre-prepare carried (the digest covers it), or the null request (null digest, time 0) for gaps.
   */
  entries: Array<{ seq: number; digest: Uint8Array; time: number }>;
}

/**
 * PBFT's NEW-VIEW computation: min-s is the highest stable checkpoint in the set, max-s the highest
 * prepared sequence number; every sequence number in between gets the digest (and batch time) of its
 * prepared certificate with the highest view, or the null request when none prepared. A re-proposed
 * batch keeps the time it prepared with: the time is part of its digest.
 */
export function planNewView(viewChanges: readonly ViewChangeMsg[], ctx: QuorumContext): NewViewPlan {
  let checkpoint = viewChanges[0]!.checkpoint;
  for (const vc of viewChanges) if (vc.checkpoint.seq > checkpoint.seq) checkpoint = vc.checkpoint;
  const minS = checkpoint.seq;
  const best = new Map<number, PreparedCert>();
  let maxS = minS;
  for (const vc of viewChanges) {
    for (const cert of vc.prepared) {
      const pp = cert.prePrepare.msg;
      if (pp.seq <= minS) continue;
      const current = best.get(pp.seq);
      if (current === undefined || pp.view > current.prePrepare.msg.view) best.set(pp.seq, cert);
      if (pp.seq > maxS) maxS = pp.seq;
    }
  }
  const entries: NewViewPlan['entries'] = [];
  for (let seq = minS + 1; seq <= maxS; seq++) {
    const cert = best.get(seq);
    entries.push(cert ? { seq, digest: cert.prePrepare.msg.digest, time: cert.prePrepare.msg.time } : { seq, digest: ctx.nullDigest, time: 0 });
  }
  return { checkpoint, entries };
}

/** 2f+1 VIEW-CHANGEs for `view` from distinct replicas, each valid. */
export function checkViewChangeSet(
  view: number,
  viewChanges: readonly Signed<ViewChangeMsg>[],
  ctx: QuorumContext,
): string | undefined {
  const senders = new Set<number>();
  for (const vc of viewChanges) {
    if (vc.msg.view !== view) return 'new-view carries a view-change for another view';
    if (senders.has(vc.msg.replica)) return 'new-view carries two view-changes from one replica';
    senders.add(vc.msg.replica);
    const reason = checkViewChange(vc, ctx);
    if (reason) return `new-view carries an invalid view-change: ${reason}`;
  }
  return senders.size >= ctx.q.viewChanges ? undefined : 'new-view carries fewer than 2f+1 view-changes';
}
