/**
 * The view-change protocol (PBFT section 4.4): starting a view change, collecting VIEW-CHANGE
 * messages, the new primary's NEW-VIEW, and entering the new view with the pre-prepares it carries.
 * The checks and the NEW-VIEW computation themselves are pure functions in newview.ts.
 */
import { bytesEqual } from './auth.ts';
import { makeBatch } from './batch.ts';
import type { CheckpointCert, NewViewMsg, PrePrepareMsg, PrepareMsg, PreparedCert, Signed, SuspectMsg, ViewChangeMsg } from './messages.ts';
import { KEYS, encodePair } from './persist.ts';
import { checkViewChange, checkViewChangeSet, planNewView, primaryOf } from './newview.ts';
import { type ReplicaState } from './state.ts';

/**
 * Our view-change timer fired (a request we wait for is not executed in time): we suspect the
 * primary of our view and say so, but stay in the view. Only f+1 suspicions (ours or others', at
 * least one from a correct replica) start the view change: a replica that is merely behind (paused,
 * restarted, partitioned) cannot leave a view that the others find healthy; it catches up instead,
 * and its suspicion ends when it no longer waits (`unsuspect`). Called every tick while it holds.
 */
export function suspect(rs: ReplicaState, reason: string): void {
  if (rs.viewChanging) return;
  const first = !rs.suspicions.has(rs.id);
  rs.suspicions.set(rs.id, rs.now);
  if (rs.suspectSentAt === undefined || rs.now - rs.suspectSentAt >= rs.opts.retransmitTicks) {
    rs.suspectSentAt = rs.now;
    rs.broadcast(rs.frames.encodeSignedFrame(rs.auth.sign<SuspectMsg>({ type: 'suspect', view: rs.view, replica: rs.id })));
    relayWaiting(rs);
  }
  if (first) rs.events.push({ type: 'primary-suspected', view: rs.view, reason });
  checkSuspicions(rs, reason);
}

/**
 * The requests we wait for go to every member with our SUSPECT (the oldest few, as their clients
 * signed them): a client that reaches only some replicas (it knows an older configuration, or its
 * links to the others are down) must not leave one correct replica alone in suspecting a primary
 * that ignores its request; the others start their timers too, and f+1 can agree to move on.
 */
function relayWaiting(rs: ReplicaState): void {
  const oldest = [...rs.waiting.values()].sort((a, b) => a.since - b.since).slice(0, RELAYED_REQUESTS_MAX);
  for (const w of oldest) rs.broadcast(rs.frames.encodeSignedFrame(w.req));
}

/** Requests relayed with each SUSPECT, at most. */
const RELAYED_REQUESTS_MAX = 16;

/**
 * Aardvark's check (monitor.ts): the reason to suspect the primary of being too slow, when a request
 * this backup knows has waited longer than the bound for its PRE-PREPARE, and at least half of the
 * last PRE-PREPAREs it timed came later than that too. Undefined otherwise.
 */
export function slowPrimary(rs: ReplicaState): string | undefined {
  if (!rs.opts.slowPrimaryCheck || rs.viewChanging || rs.isPrimary() || rs.transfer) return undefined;
  rs.monitor.expire(rs.counters.requestsExecuted);
  if (!rs.monitor.slow) return undefined;
  let oldest = Infinity;
  for (const w of rs.waiting.values()) if (w.unorderedSince !== undefined && w.unorderedSince < oldest) oldest = w.unorderedSince;
  const s = rs.monitor.status();
  if (rs.now - oldest <= s.boundTicks) return undefined;
  return `slow primary: ${s.late} of the last ${s.timed} PRE-PREPAREs of requests known before came later than ${s.boundTicks} ticks, and a request waits longer`;
}

/** Our timer no longer says so: our suspicion ends (others' expire unless they resend theirs). */
export function unsuspect(rs: ReplicaState): void {
  rs.suspicions.delete(rs.id);
  rs.suspectSentAt = undefined;
}

export function onSuspect(rs: ReplicaState, signed: Signed<SuspectMsg>): void {
  const m = signed.msg;
  if (m.view !== rs.view || rs.viewChanging) return rs.reject('suspect-other-view');
  if (!rs.auth.verify(signed)) return rs.reject('bad-signature');
  rs.suspicions.set(m.replica, rs.now);
  checkSuspicions(rs, `${rs.q.suspicions} replicas suspect the primary`);
}

/**
 * f+1 replicas against the current view's primary: start the view change. A replica counts when its
 * SUSPECT for our view is fresh, or when it sent a VIEW-CHANGE for a view above ours (it left ours).
 */
function checkSuspicions(rs: ReplicaState, reason: string): void {
  if (rs.viewChanging) return;
  // A suspecting replica resends its SUSPECT every retransmit period; one not heard again within a
  // base view-change timeout no longer counts (its primary recovered, or it caught up).
  const ttl = rs.timers.viewChange.ticks;
  for (const [replica, at] of [...rs.suspicions]) if (rs.now - at > ttl) rs.suspicions.delete(replica);
  const against = new Set(rs.suspicions.keys());
  for (const [sender, byView] of rs.viewChanges) {
    if (sender !== rs.id && [...byView.keys()].some((v) => v > rs.view)) against.add(sender);
  }
  if (against.size >= rs.q.suspicions) startViewChange(rs, rs.view + 1, reason);
}

/** Stops accepting messages of the current view and asks to move to `view`. */
export function startViewChange(rs: ReplicaState, view: number, reason: string): void {
  if (view <= rs.view && (rs.viewChanging || view < rs.view)) return;
  rs.view = view;
  rs.viewStatus = 'view-change';
  rs.suspicions.clear();
  rs.suspectSentAt = undefined;
  rs.timers.viewChange.backOff();
  rs.counters.viewChanges++;
  rs.timers.viewChange.stop();
  rs.newViewFrame = undefined;
  rs.newViewAhead = [];
  rs.assigned.clear();
  rs.queue = [];
  rs.queued.clear();
  sendViewChange(rs, view, reason);
}

/**
 * The operating configuration changed during a view change: the VIEW-CHANGEs gathered were the old
 * configuration's, so we ask for the next view in the new one (with the new stable checkpoint; a
 * second, different VIEW-CHANGE for the same view would be an equivocation), and the f+1 rule
 * brings the others along.
 */
export function renewViewChange(rs: ReplicaState): void {
  if (!rs.viewChanging || !rs.isMember(rs.id)) return;
  startViewChange(rs, rs.view + 1, 'configuration changed');
}

function sendViewChange(rs: ReplicaState, view: number, reason: string): void {
  if (!rs.mayViewChange()) {
    // Recovering: it follows the view but says nothing (a VIEW-CHANGE without the certificates it
    // forgot could let a committed request be reordered).
    rs.persistViewState();
    rs.events.push({ type: 'view-change-started', view, reason: `${reason} (recovering: no VIEW-CHANGE before stable checkpoint ${rs.floor!.seq})` });
    return;
  }
  const prepared: PreparedCert[] = [];
  for (const slot of [...rs.slots.values()].sort((a, b) => a.seq - b.seq)) {
    if (slot.cert && slot.seq > rs.h) prepared.push(slot.cert);
  }
  const vc = rs.auth.sign<ViewChangeMsg>({ type: 'viewchange', view, replica: rs.id, checkpoint: rs.stable, prepared });
  pruneViewChanges(rs, view);
  rs.storeViewChange(vc);
  rs.ownViewChangeFrame = rs.frames.encodeSignedFrame(vc);
  rs.ownViewChangeFrames.set(view, rs.ownViewChangeFrame);
  rs.writes.put(KEYS.viewChange(view), encodePair(vc));
  for (const v of [...rs.ownViewChangeFrames.keys()]) {
    if (v < view - 4) {
      rs.ownViewChangeFrames.delete(v);
      rs.writes.del(KEYS.viewChange(v));
    }
  }
  rs.persistViewState();
  rs.broadcast(rs.ownViewChangeFrame);
  rs.events.push({ type: 'view-change-started', view, reason });
  afterViewChangeVote(rs);
}

export function onViewChange(rs: ReplicaState, signed: Signed<ViewChangeMsg>): void {
  const m = signed.msg;
  // A VIEW-CHANGE belongs to the configuration of its stable checkpoint: another epoch's sender is
  // behind (it will follow) or ahead (we will): neither counts here, and neither misbehaved.
  if (m.checkpoint.epoch !== rs.epoch.epoch) return rs.reject('other-epoch');
  if (m.view < rs.view || (m.view === rs.view && !rs.viewChanging)) {
    helpLagging(rs, m.replica, m.view);
    return rs.reject('old-view-change');
  }
  const bySender = rs.viewChanges.get(m.replica);
  if (bySender?.has(m.view)) return rs.reject('duplicate');
  const reason = checkViewChange(signed, rs.ctx);
  if (reason) {
    rs.misbehaved(m.replica, 'invalid-view-change', reason);
    return rs.reject('invalid-view-change');
  }
  rs.storeViewChange(signed);
  noteCertificates(rs, m);
  rs.noteAhead(m.replica, m.view);
  // Its checkpoint certificate is as good as our own votes.
  if (m.checkpoint.seq > rs.h) rs.onStableCert(m.checkpoint);
  // The f+1 rule: f+1 replicas want views above ours; join the smallest of them.
  const above: number[] = [];
  for (const [sender, byView] of rs.viewChanges) {
    if (sender === rs.id) continue;
    let lowest = Infinity;
    for (const v of byView.keys()) if (v > rs.view && v < lowest) lowest = v;
    if (lowest !== Infinity) above.push(lowest);
  }
  if (above.length >= rs.q.join) {
    startViewChange(rs, Math.min(...above), 'f+1 view-changes');
    return;
  }
  // A replica that left our view counts against its primary, with the suspicions (pre-vote).
  if (!rs.viewChanging && m.view > rs.view) checkSuspicions(rs, 'suspected, and a replica left the view');
  afterViewChangeVote(rs);
}

/** The votes a valid VIEW-CHANGE carries, checked against ours (evidence of equivocation). */
function noteCertificates(rs: ReplicaState, vc: ViewChangeMsg): void {
  for (const cert of vc.prepared) {
    rs.crossCheck(cert.prePrepare);
    for (const p of cert.prepares) rs.crossCheck(p);
  }
}

/** Forgets VIEW-CHANGEs for views below `view`. */
function pruneViewChanges(rs: ReplicaState, view: number): void {
  for (const [sender, byView] of rs.viewChanges) {
    for (const v of [...byView.keys()]) if (v < view) byView.delete(v);
    if (byView.size === 0) rs.viewChanges.delete(sender);
  }
}

/**
 * A replica still collecting VIEW-CHANGEs for a view we left: send it our NEW-VIEW if we entered a
 * later view, our own VIEW-CHANGE for its view (so it can reach 2f+1) and our newest one (so the
 * f+1 rule can pull it forward). At most once per retransmission period per replica.
 */
function helpLagging(rs: ReplicaState, peer: number, view: number): void {
  const last = rs.helpedAt.get(peer);
  if (last !== undefined && rs.now - last < rs.opts.retransmitTicks) return;
  rs.helpedAt.set(peer, rs.now);
  if (!rs.viewChanging && rs.newViewFrame) rs.sendTo(peer, rs.newViewFrame);
  const old = rs.ownViewChangeFrames.get(view);
  if (old) rs.sendTo(peer, old);
  if (rs.viewChanging && rs.ownViewChangeFrame && rs.ownViewChangeFrame !== old) rs.sendTo(peer, rs.ownViewChangeFrame);
}

function viewChangesFor(rs: ReplicaState, view: number): Signed<ViewChangeMsg>[] {
  const out: Signed<ViewChangeMsg>[] = [];
  for (const byView of rs.viewChanges.values()) {
    const vc = byView.get(view);
    if (vc) out.push(vc);
  }
  return out;
}

/** With 2f+1 VIEW-CHANGEs for our view: start the new-view timer; the new primary sends NEW-VIEW. */
function afterViewChangeVote(rs: ReplicaState): void {
  if (!rs.viewChanging) return;
  const votes = viewChangesFor(rs, rs.view);
  if (votes.length < rs.q.viewChanges) return;
  rs.timers.viewChange.startIfStopped(rs.now);
  if (rs.isPrimary()) sendNewView(rs, votes);
}

function sendNewView(rs: ReplicaState, votes: Signed<ViewChangeMsg>[]): void {
  const own = votes.find((v) => v.msg.replica === rs.id);
  if (!own) return;
  const chosen = [own, ...votes.filter((v) => v !== own).sort((a, b) => a.msg.replica - b.msg.replica)].slice(0, rs.q.viewChanges);
  const plan = planNewView(chosen.map((v) => v.msg), rs.ctx);
  const prePrepares = plan.entries.map((e) =>
    rs.auth.sign<PrePrepareMsg>({ type: 'preprepare', view: rs.view, seq: e.seq, digest: e.digest, replica: rs.id, time: e.time }),
  );
  const nv = rs.auth.sign<NewViewMsg>({ type: 'newview', view: rs.view, replica: rs.id, viewChanges: chosen, prePrepares });
  enterView(rs, nv, plan.checkpoint);
  rs.broadcast(rs.newViewFrame!);
}

export function onNewView(rs: ReplicaState, signed: Signed<NewViewMsg>, from: number): void {
  const m = signed.msg;
  if (m.replica !== primaryOf(m.view, rs.members)) return rs.reject('newview-not-from-primary');
  if (m.view < rs.view || (m.view === rs.view && !rs.viewChanging)) return rs.reject('old-new-view');
  if (!rs.auth.verify(signed)) return rs.reject('bad-signature');
  const reason = checkViewChangeSet(m.view, m.viewChanges, rs.ctx);
  if (reason) {
    rs.misbehaved(from, 'invalid-new-view', reason);
    return rs.reject('invalid-new-view');
  }
  // Recompute the pre-prepares from the VIEW-CHANGEs; reject a NEW-VIEW that differs.
  const plan = planNewView(m.viewChanges.map((v) => v.msg), rs.ctx);
  if (plan.entries.length !== m.prePrepares.length) {
    rs.misbehaved(from, 'new-view-mismatch', 'new-view pre-prepares differ from the view-changes');
    return rs.reject('invalid-new-view');
  }
  for (let i = 0; i < plan.entries.length; i++) {
    const e = plan.entries[i]!;
    const pp = m.prePrepares[i]!;
    if (
      pp.msg.view !== m.view ||
      pp.msg.replica !== m.replica ||
      pp.msg.seq !== e.seq ||
      !bytesEqual(pp.msg.digest, e.digest) ||
      pp.msg.time !== e.time ||
      !rs.auth.verify(pp)
    ) {
      rs.misbehaved(from, 'new-view-mismatch', 'new-view pre-prepares differ from the view-changes');
      return rs.reject('invalid-new-view');
    }
  }
  for (const vc of m.viewChanges) noteCertificates(rs, vc.msg);
  enterView(rs, signed, plan.checkpoint);
}

/** Enters the view of a valid NEW-VIEW: adopt its checkpoint, install its pre-prepares, prepare them. */
function enterView(rs: ReplicaState, nv: Signed<NewViewMsg>, checkpoint: CheckpointCert): void {
  const view = nv.msg.view;
  rs.view = view;
  rs.suspicions.clear();
  rs.suspectSentAt = undefined;
  rs.viewStatus = 'normal';
  rs.timers.viewChange.stop();
  rs.newViewFrame = rs.frames.encodeSignedFrame(nv);
  rs.writes.put(KEYS.newView, encodePair(nv));
  rs.persistViewState();
  rs.assigned.clear();
  rs.queue = [];
  rs.queued.clear();
  rs.aheadViews.clear();
  pruneViewChanges(rs, view + 1);
  if (checkpoint.seq > rs.h) rs.onStableCert(checkpoint);
  // Votes of earlier views no longer count; prepared certificates and commits stay.
  for (const slot of rs.slots.values()) {
    if (slot.view < view) rs.resetSlotView(slot, view);
  }
  let maxSeq = rs.h;
  rs.newViewAhead = [];
  for (const pp of nv.msg.prePrepares) {
    const seq = pp.msg.seq;
    if (seq > maxSeq) maxSeq = seq;
    if (rs.inWindow(seq)) installNewViewPrePrepare(rs, pp);
    else if (seq > rs.h) rs.newViewAhead.push(pp);
  }
  rs.nextSeq = Math.max(maxSeq, rs.lastExecuted) + 1;
  // Requests still waiting get a full timeout in the new view; the new primary proposes them. The
  // primary monitor starts afresh: the new primary is timed from now, by its backups only.
  rs.monitor.newView();
  for (const w of rs.waiting.values()) {
    w.since = rs.now;
    if (w.unorderedSince !== undefined) w.unorderedSince = rs.isPrimary() ? undefined : rs.now;
    if (rs.isPrimary() && rs.assigned.get(w.req.msg.client) !== w.req.msg.timestamp) rs.enqueue(w.req.msg.client);
  }
  rs.events.push({ type: 'view-entered', view, primary: rs.primary });
  rs.executeReady();
}

/** A pre-prepare of the current view's NEW-VIEW, in our window: adopt it and prepare it. */
function installNewViewPrePrepare(rs: ReplicaState, pp: Signed<PrePrepareMsg>): void {
  const slot = rs.slotFor(pp.msg.seq);
  if (slot.prePrepare && slot.prePrepare.msg.view === pp.msg.view) return rs.crossCheck(pp);
  slot.prePrepare = pp;
  rs.markDirty(slot);
  if (bytesEqual(pp.msg.digest, rs.ctx.nullDigest) && !rs.batchFor(slot, pp.msg.digest)) {
    rs.addBatch(slot, makeBatch(rs.hash, [], 0));
  }
  const batch = rs.batchFor(slot, pp.msg.digest);
  if (batch) {
    for (const r of batch.requests) rs.assigned.set(r.msg.client, r.msg.timestamp);
    rs.noteOrdered(batch.requests, false);
  }
  if (!rs.isPrimary() && rs.mayVote(pp.msg.view, pp.msg.seq)) {
    const prepare = rs.auth.sign<PrepareMsg>({ type: 'prepare', view: pp.msg.view, seq: pp.msg.seq, digest: pp.msg.digest, replica: rs.id });
    slot.prepares.set(rs.id, prepare);
    rs.broadcastVote(rs.frames.encodeSignedFrame(prepare));
  }
  rs.checkPrepared(slot);
}

/** After the window moved: the NEW-VIEW pre-prepares it now covers. */
export function installNewViewAhead(rs: ReplicaState): void {
  if (rs.viewChanging || rs.newViewAhead.length === 0) return;
  const ahead = rs.newViewAhead;
  rs.newViewAhead = [];
  for (const pp of ahead) {
    if (pp.msg.view !== rs.view || pp.msg.seq <= rs.h) continue;
    if (rs.inWindow(pp.msg.seq)) installNewViewPrePrepare(rs, pp);
    else rs.newViewAhead.push(pp);
  }
}
