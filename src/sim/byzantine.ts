/**
 * Byzantine replica behaviours for the simulator. A byzantine replica runs the real core and then
 * rewrites what it sends: it may drop, alter and re-sign (with its own key only), delay, equivocate,
 * forge, replay or garble messages. Twins (two instances with one key) live in SimCluster.makeTwins.
 */
import { concatBytes, domainTag } from '../core/auth.ts';
import { makeBatch } from '../core/batch.ts';
import { decodeFrame, encodeBody, encodeLinkFrame, encodeSignedFrame } from '../codec/messages.ts';
import type { Replica } from '../core/replica.ts';
import type { Sent as OutMessage, SentReply } from '../node/pipeline.ts';
import type { CheckpointMsg, EpochProof, RequestMsg, Signed, SignedMessage } from '../core/messages.ts';
import { encodeMembership } from '../core/membership.ts';
import { membershipDigest, stateDigestOfParts } from '../core/statetree.ts';
import type { World, WorldHost } from './world.ts';
import { sha256 } from './crypto.ts';
import { forgeReply } from './forge.ts';
import type { Prng } from './prng.ts';
import type { ExecuteContext } from '../app/types.ts';
import { KvStore } from '../app/kv.ts';

type Replies = SentReply[];

export interface Behavior {
  readonly name: string;
  /** Rewrites what the (real) core wanted to send. */
  outgoing(sim: World, host: WorldHost, replica: Replica, messages: OutMessage[], replies: Replies): { messages: OutMessage[]; replies: Replies };
  /** Called every tick (to release delayed messages, inject forgeries, ...). */
  tick?(sim: World, host: WorldHost, replica: Replica): void;
  /**
   * The result the replica signs for a read-only request (src/core/reads.ts), in place of executing
   * it on its state; undefined: the honest result.
   */
  readOnly?(op: Uint8Array, ctx: ExecuteContext): Uint8Array | undefined;
}

export const BEHAVIOR_NAMES = [
  'silent',
  'selective-silent',
  'wrong-digest',
  'wrong-result',
  'equivocate',
  'slow-primary',
  'forge',
  'replay',
  'malformed',
  'omit-certificates',
  'vote-all',
  'corrupt-transfer',
] as const;
export type BehaviorName = (typeof BEHAVIOR_NAMES)[number];

/** Signs a message with this host's key, as the real core would. */
export function signAs(sim: World, host: WorldHost, msg: SignedMessage): Signed {
  const body = encodeBody(msg);
  return { msg, body, sig: host.signer.sign(concatBytes(domainTag(sim.cluster.clusterId, msg.type), body)) };
}

function decodeSigned(frame: Uint8Array): { signed: Signed; batch?: Signed<RequestMsg>[] } | undefined {
  const d = decodeFrame(frame);
  return d.ok && d.value.kind === 'signed' ? { signed: d.value.signed, batch: d.value.batch } : undefined;
}

function mapMessages(messages: OutMessage[], fn: (m: OutMessage) => OutMessage | OutMessage[] | undefined): OutMessage[] {
  const out: OutMessage[] = [];
  for (const m of messages) {
    const r = fn(m);
    if (r === undefined) continue;
    if (Array.isArray(r)) out.push(...r);
    else out.push(r);
  }
  return out;
}

class Silent implements Behavior {
  readonly name = 'silent';
  outgoing(): { messages: OutMessage[]; replies: Replies } {
    return { messages: [], replies: [] };
  }
}

/**
 * Votes, checkpoints and transfers like a correct replica but never replies to a client: what a
 * client that names its repliers (src/client/repliers.ts) must get past. Not among BEHAVIOR_NAMES
 * (that list's order and length draw the swarm's plans: the kept seeds would change meaning).
 */
export class MuteReplies implements Behavior {
  readonly name = 'mute-replies';
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[]) {
    return { messages, replies: [] as Replies };
  }
}

class SelectiveSilent implements Behavior {
  readonly name = 'selective-silent';
  constructor(private readonly mutedPeers: Set<number>) {}
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    return { messages: messages.filter((m) => !this.mutedPeers.has(m.to)), replies };
  }
}

/** Alters digests in PREPARE / COMMIT / CHECKPOINT / VIEW-CHANGE / NEW-VIEW and re-signs. */
class WrongDigest implements Behavior {
  readonly name = 'wrong-digest';
  constructor(private readonly prng: Prng, private readonly rate: number) {}
  outgoing(sim: World, host: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      if (!this.prng.chance(this.rate)) return m;
      const d = decodeSigned(m.frame);
      if (!d) return m;
      const msg = d.signed.msg;
      switch (msg.type) {
        case 'prepare':
        case 'commit':
        case 'checkpoint':
          return { to: m.to, frame: encodeSignedFrame(signAs(sim, host, { ...msg, digest: this.prng.bytes(32) })) };
        case 'viewchange': {
          const cert = msg.prepared[0];
          if (!cert) return { to: m.to, frame: encodeSignedFrame(signAs(sim, host, { ...msg, checkpoint: { ...msg.checkpoint, digest: this.prng.bytes(32) } })) };
          const forged = { ...cert.prePrepare, msg: { ...cert.prePrepare.msg, digest: this.prng.bytes(32) } };
          return { to: m.to, frame: encodeSignedFrame(signAs(sim, host, { ...msg, prepared: [{ ...cert, prePrepare: forged }, ...msg.prepared.slice(1)] })) };
        }
        case 'newview': {
          const pps = msg.prePrepares.map((pp) => signAs(sim, host, { ...pp.msg, digest: this.prng.bytes(32) }) as Signed<typeof pp.msg>);
          return { to: m.to, frame: encodeSignedFrame(signAs(sim, host, { ...msg, prePrepares: pps })) };
        }
        default:
          return m;
      }
    });
    return { messages: out, replies };
  }
}

class WrongResult implements Behavior {
  readonly name = 'wrong-result';
  constructor(private readonly prng: Prng) {}
  outgoing(sim: World, host: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = replies.map((r) => {
      const frame = forgeReply(r.frame, sim.cluster.clusterId, (d) => host.signer.sign(d), this.prng.bytes(1 + this.prng.int(8)));
      return frame ? { ...r, frame } : r;
    });
    return { messages, replies: out };
  }
}

/** As primary: sends a different (validly signed) batch to some of the backups. */
class Equivocate implements Behavior {
  readonly name = 'equivocate';
  constructor(private readonly prng: Prng) {}
  outgoing(sim: World, host: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const alternates = new Map<number, Uint8Array>();
    const out = mapMessages(messages, (m) => {
      const d = decodeSigned(m.frame);
      if (!d || d.signed.msg.type !== 'preprepare' || !d.batch) return m;
      // Split the correct backups in two even halves (colluders know each other); the second half
      // gets the other batch, so that each half can gather a quorum with the accomplices' votes.
      const correct = Array.from({ length: sim.n }, (_, i) => i).filter((i) => i !== host.id && !sim.hosts[i]!.byzantine);
      const rank = correct.indexOf(m.to);
      if (rank < 0 || (rank + d.signed.msg.seq) % 2 === 0) return m;
      let frame = alternates.get(d.signed.msg.seq);
      if (!frame) {
        // Always a different digest: drop the last request (a one-request batch becomes the null request),
        // or, for larger batches, sometimes keep them all in another order.
        const requests =
          d.batch.length > 1 && this.prng.chance(0.5) ? [...d.batch.slice(1), d.batch[0]!] : d.batch.slice(0, d.batch.length - 1);
        const batch = makeBatch(sha256, requests, d.signed.msg.time);
        const pp = signAs(sim, host, { ...d.signed.msg, digest: batch.digest });
        frame = encodeSignedFrame(pp, batch.requests);
        alternates.set(d.signed.msg.seq, frame);
      }
      return { to: m.to, frame };
    });
    return { messages: out, replies };
  }
}

/**
 * As primary: moves the time of its batches (not in BEHAVIOR_NAMES: the swarm's plans stay as
 * they were; test/sim/batch-time.test.ts uses it). 'ahead' adds `jumpMs` to every proposed time
 * (leases would expire early); 'frozen' proposes the first time it proposed, forever (leases would
 * never expire). Each pre-prepare is re-signed with its batch's digest recomputed for the new time.
 */
export class BatchTimeLiar implements Behavior {
  readonly name = 'batch-time-liar';
  private frozenMs?: number;
  constructor(
    private readonly mode: 'ahead' | 'frozen',
    private readonly jumpMs: number,
  ) {}
  outgoing(sim: World, host: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      const d = decodeSigned(m.frame);
      if (!d || d.signed.msg.type !== 'preprepare' || !d.batch) return m;
      const pp = d.signed.msg;
      this.frozenMs ??= pp.time;
      const time = this.mode === 'ahead' ? pp.time + this.jumpMs : this.frozenMs;
      if (time === pp.time) return m;
      const batch = makeBatch(sha256, d.batch, time);
      sim.count('batch-time-lie');
      return { to: m.to, frame: encodeSignedFrame(signAs(sim, host, { ...pp, digest: batch.digest, time }), batch.requests) };
    });
    return { messages: out, replies };
  }
}

/**
 * A primary that puts a request its client never signed into every batch it proposes: the first
 * request keeps its client and timestamp but gets another operation, signed with the primary's own
 * key. Every backup receives the same forged batch (one per sequence number) and the primary's
 * COMMIT for it, so the backups that skip client signatures (quorum.ts, skipsClientSignatures)
 * prepare it and need only their own COMMITs besides; the checking ones must refuse it.
 */
export class RequestForger implements Behavior {
  readonly name = 'request-forger';
  private readonly forged = new Map<string, Uint8Array[]>();
  /**
   * `resign`: instead, the backups in `resignTo(view, seq, backup)` (the skippers, say) get the
   * genuine batch with the primary's own signature on every request: the same bodies, so the same
   * digest, and the others the genuine batch. Everyone prepares and commits it; the skippers hold
   * requests with signatures no client made. It then serves no fetched entries or batches itself,
   * so that a replica catching up asks the others, the skippers among them.
   */
  constructor(private readonly resignTo?: (view: number, seq: number, backup: number) => boolean) {}
  outgoing(sim: World, host: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      if (this.resignTo !== undefined) {
        const l = decodeFrame(m.frame);
        if (l.ok && l.value.kind === 'link' && (l.value.msg.type === 'fetched' || l.value.msg.type === 'batch')) return undefined;
      }
      const d = decodeSigned(m.frame);
      if (!d || d.signed.msg.type !== 'preprepare' || !d.batch || d.batch.length === 0) return m;
      const pp = d.signed.msg;
      if (this.resignTo !== undefined) {
        if (!this.resignTo(pp.view, pp.seq, m.to)) return m;
        sim.count('resigned-batch');
        const resigned = d.batch.map((r) => ({ ...signAs(sim, host, r.msg), body: r.body }) as Signed<RequestMsg>);
        return { to: m.to, frame: encodeSignedFrame(d.signed, resigned) };
      }
      const key = `${pp.view}/${pp.seq}/${Buffer.from(pp.digest).toString('hex')}`;
      let forged = this.forged.get(key);
      if (forged === undefined) {
        const first = d.batch[0]!.msg;
        const fake = signAs(sim, host, { ...first, op: concatBytes(first.op, new Uint8Array([0x66])) }) as Signed<RequestMsg>;
        const batch = makeBatch(sha256, [fake, ...d.batch.slice(1)], pp.time);
        forged = [
          encodeSignedFrame(signAs(sim, host, { ...pp, digest: batch.digest }), batch.requests),
          encodeSignedFrame(signAs(sim, host, { type: 'commit', view: pp.view, seq: pp.seq, digest: batch.digest, replica: host.id })),
        ];
        this.forged.set(key, forged);
        sim.count('forged-request');
      }
      return forged.map((frame) => ({ to: m.to, frame }));
    });
    return { messages: out, replies };
  }
}

/** Delays its pre-prepares to just under the view-change timeout. */
/**
 * Holds every PRE-PREPARE (with its batch) `delayTicks` before sending it; everything else leaves at
 * once. With `growth`, the hold grows `factor` times every `everyTicks` ticks of the run: a primary
 * that ratchets up the request timer's learned timeout (ReplicaState.requestTimeoutTicks) step by step.
 */
export class SlowPrimary implements Behavior {
  readonly name = 'slow-primary';
  private readonly held: Array<{ at: number; m: OutMessage }> = [];
  constructor(
    private readonly delayTicks: number,
    private readonly growth?: { everyTicks: number; factor: number },
  ) {}
  /** The hold of a PRE-PREPARE sent at tick `now`. */
  holdTicks(now: number): number {
    const g = this.growth;
    return g === undefined ? this.delayTicks : Math.round(this.delayTicks * g.factor ** Math.floor(now / g.everyTicks));
  }
  outgoing(sim: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      const d = decodeSigned(m.frame);
      if (d && d.signed.msg.type === 'preprepare' && d.batch) {
        // (Holds only grow, so the queue stays in release order.)
        this.held.push({ at: sim.now + this.holdTicks(sim.now), m });
        return undefined;
      }
      return m;
    });
    return { messages: out, replies };
  }
  tick(sim: World, host: WorldHost): void {
    while (this.held.length > 0 && this.held[0]!.at <= sim.now) sim.sendFromReplica(host.id, this.held[0]!.m.to, this.held.shift()!.m.frame);
  }
}

/** Injects messages that claim to come from others: signed with its own key, or naming another sender. */
class Forge implements Behavior {
  readonly name = 'forge';
  constructor(private readonly prng: Prng) {}
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    return { messages, replies };
  }
  tick(sim: World, host: WorldHost, replica: Replica): void {
    if (!this.prng.chance(0.05)) return;
    const victim = this.prng.int(sim.n);
    const to = this.prng.int(sim.n);
    const seq = replica.lastExecuted + 1 + this.prng.int(3);
    const digest = this.prng.bytes(32);
    let frame: Uint8Array;
    switch (this.prng.int(4)) {
      case 0: // a prepare in someone else's name, signed with our key
        frame = encodeSignedFrame(signAs(sim, host, { type: 'prepare', view: replica.view, seq, digest, replica: victim }));
        break;
      case 1: // a commit in someone else's name
        frame = encodeSignedFrame(signAs(sim, host, { type: 'commit', view: replica.view, seq, digest, replica: victim }));
        break;
      case 2: {
        // a client request forged with our key
        const req = signAs(sim, host, { type: 'request', client: this.prng.int(sim.clients.length), timestamp: Number.MAX_SAFE_INTEGER - this.prng.int(1000), op: this.prng.bytes(8) });
        frame = encodeSignedFrame(req);
        break;
      }
      default: {
        // a pre-prepare carrying a forged request, as if we were primary
        const req = signAs(sim, host, { type: 'request', client: 0, timestamp: Number.MAX_SAFE_INTEGER, op: this.prng.bytes(8) }) as Signed<RequestMsg>;
        const time = replica.clockMs ?? 0;
        const batch = makeBatch(sha256, [req], time);
        frame = encodeSignedFrame(signAs(sim, host, { type: 'preprepare', view: replica.view, seq, digest: batch.digest, replica: host.id, time }), [req]);
      }
    }
    sim.count('forged');
    sim.sendFromReplica(host.id, to, frame);
  }
}

/** Re-sends messages seen earlier on the network (its own and others', old views included). */
class Replay implements Behavior {
  readonly name = 'replay';
  constructor(private readonly prng: Prng) {}
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    return { messages, replies };
  }
  tick(sim: World, host: WorldHost): void {
    if (!this.prng.chance(0.1) || sim.net.recent.length === 0) return;
    const m = sim.net.recent[this.prng.int(sim.net.recent.length)]!;
    sim.count('replayed');
    sim.sendFromReplica(host.id, this.prng.int(sim.n), m.bytes);
  }
}

/** Sends garbage: random bytes, truncated and bit-flipped frames. */
class Malformed implements Behavior {
  readonly name = 'malformed';
  constructor(private readonly prng: Prng) {}
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const extra: OutMessage[] = [];
    for (const m of messages) {
      if (!this.prng.chance(0.1)) continue;
      const bytes = new Uint8Array(m.frame);
      const kind = this.prng.int(3);
      if (kind === 0) extra.push({ to: m.to, frame: bytes.subarray(0, this.prng.int(bytes.length)) });
      else if (kind === 1) {
        bytes[this.prng.int(bytes.length)]! ^= 1 << this.prng.int(8);
        extra.push({ to: m.to, frame: bytes });
      } else extra.push({ to: m.to, frame: this.prng.bytes(this.prng.int(64)) });
    }
    return { messages: [...messages, ...extra], replies };
  }
}

/** Sends VIEW-CHANGEs without its prepared certificates (hides what it prepared). */
class OmitCertificates implements Behavior {
  readonly name = 'omit-certificates';
  outgoing(sim: World, host: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      const d = decodeSigned(m.frame);
      if (!d || d.signed.msg.type !== 'viewchange') return m;
      return { to: m.to, frame: encodeSignedFrame(signAs(sim, host, { ...d.signed.msg, prepared: [] })) };
    });
    return { messages: out, replies };
  }
}

/**
 * Votes for everything, to each replica for whatever it was offered: when a pre-prepare (v, n, d)
 * reaches replica X, this replica sends X a PREPARE and a COMMIT for (v, n, d); its honest core's own
 * votes are suppressed. A correct replica counts one vote per sender per slot, so targeting matters:
 * with an equivocating primary, each half of the correct replicas gets the accomplices' votes for its
 * own version. Harmless with at most f faulty replicas; with f+1 colluders it splits correct replicas
 * (the negative control).
 */
class VoteAll implements Behavior {
  readonly name = 'vote-all';
  private readonly voted = new Set<string>();
  private lastSeen = -1;
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = messages.filter((m) => {
      const d = decodeSigned(m.frame);
      return !d || (d.signed.msg.type !== 'prepare' && d.signed.msg.type !== 'commit');
    });
    return { messages: out, replies };
  }
  tick(sim: World, host: WorldHost, replica: Replica): void {
    for (const m of sim.net.recent) {
      if (m.delivered === undefined || m.delivered <= this.lastSeen) continue;
      this.lastSeen = m.delivered;
      if (m.to === host.id || m.to >= sim.n) continue;
      const d = decodeSigned(m.bytes);
      if (!d || d.signed.msg.type !== 'preprepare') continue;
      const msg = d.signed.msg;
      if (msg.view < replica.view) continue;
      const key = `${m.to}:${msg.view}:${msg.seq}:${Buffer.from(msg.digest).toString('hex')}`;
      if (this.voted.has(key)) continue;
      if (this.voted.size > 20_000) this.voted.clear();
      this.voted.add(key);
      if (msg.view % sim.n !== host.id) {
        sim.sendFromReplica(host.id, m.to, encodeSignedFrame(signAs(sim, host, { type: 'prepare', view: msg.view, seq: msg.seq, digest: msg.digest, replica: host.id })));
      }
      sim.sendFromReplica(host.id, m.to, encodeSignedFrame(signAs(sim, host, { type: 'commit', view: msg.view, seq: msg.seq, digest: msg.digest, replica: host.id })));
    }
  }
}

/**
 * Serves wrong data to replicas catching up: altered state-transfer replies (group digests,
 * leaves, partition bytes) and fetched entries whose batch differs from the certified digest.
 */
class CorruptTransfer implements Behavior {
  readonly name = 'corrupt-transfer';
  constructor(private readonly prng: Prng) {}
  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      const d = decodeFrame(m.frame);
      if (!d.ok || d.value.kind !== 'link') return m;
      const msg = d.value.msg;
      const flip = (b: Uint8Array): Uint8Array => {
        const c = new Uint8Array(b.length > 0 ? b : [0]);
        c[this.prng.int(c.length)]! ^= 1 + this.prng.int(255);
        return c;
      };
      if (msg.type === 'state') {
        const r = msg.reply;
        if (r.kind === 'meta') return { to: m.to, frame: encodeLinkFrame({ ...msg, reply: { ...r, groupDigests: r.groupDigests.map((g, i) => (i === 0 ? flip(g) : g)) } }) };
        if (r.kind === 'leaves') {
          // Wrong leaves, or (to an asker that sent its prefixes) the claim that none of its leaves differ.
          const lie = (g: (typeof r.groups)[number]): typeof g =>
            g.positions && this.prng.chance(0.5) ? { group: g.group, leaves: [], positions: [] } : { ...g, leaves: g.leaves.map(flip) };
          return { to: m.to, frame: encodeLinkFrame({ ...msg, reply: { ...r, groups: r.groups.map(lie) } }) };
        }
        if (r.kind === 'partitions') return { to: m.to, frame: encodeLinkFrame({ ...msg, reply: { ...r, compressed: flip(r.compressed) } }) };
      }
      if (msg.type === 'fetched' && msg.entries.length > 0) {
        const entries = msg.entries.map((e) => ({ ...e, batch: e.batch.slice(0, Math.max(0, e.batch.length - 1)) }));
        return { to: m.to, frame: encodeLinkFrame({ ...msg, entries }) };
      }
      if (msg.type === 'batch') return { to: m.to, frame: encodeLinkFrame({ ...msg, batch: msg.batch.slice(1) }) };
      return m;
    });
    return { messages: out, replies };
  }
}

/**
 * Lies about the membership (issue 13's byzantine replica): every fetch reply and epoch-proof
 * answer carries a forged proof of a next configuration in which this replica and keys of its own
 * making are the members, certified by its signature alone. Not among BEHAVIOR_NAMES (the general
 * swarm's draws stay as they were): the membership swarm uses it.
 */
export class ConfigLiar implements Behavior {
  readonly name = 'config-liar';
  constructor(private readonly prng: Prng) {}
  outgoing(sim: World, host: WorldHost, replica: Replica, messages: OutMessage[], replies: Replies) {
    const out = mapMessages(messages, (m) => {
      const d = decodeFrame(m.frame);
      if (!d.ok || d.value.kind !== 'link') return m;
      const msg = d.value.msg;
      if (msg.type === 'fetched') return { to: m.to, frame: encodeLinkFrame({ ...msg, proofs: [...msg.proofs, this.forge(sim, host, replica)] }) };
      if (msg.type === 'epochs') return { to: m.to, frame: encodeLinkFrame({ ...msg, proofs: [this.forge(sim, host, replica)] }) };
      return m;
    });
    const liedTo = replies.map((r) => {
      const d = decodeFrame(r.frame);
      if (!d.ok || d.value.kind !== 'link' || d.value.msg.type !== 'epochs') return r;
      return { ...r, frame: encodeLinkFrame({ type: 'epochs', proofs: [this.forge(sim, host, replica)] }) };
    });
    return { messages: out, replies: liedTo };
  }

  private forge(sim: World, host: WorldHost, replica: Replica): EpochProof {
    const epoch = replica.latestEpoch + 1;
    const k = sim.opts.replica.checkpointInterval ?? 128;
    const since = (Math.floor(replica.h / k) + 2) * k;
    const fake = (id: number): { id: number; url: string; publicKey: Uint8Array } => ({ id, url: `sim://fake-${id}`, publicKey: sha256(new Uint8Array([id, this.prng.int(256), 7])) });
    const replicas = [{ id: host.id, url: `sim://${host.id}`, publicKey: host.signer.publicKey }, fake(90), fake(91), fake(92)].sort((a, b) => a.id - b.id);
    const membership = encodeMembership({ current: { epoch, since, replicas, clients: sim.cluster.clients, operator: sim.cluster.operatorKey } });
    const root = sha256(new Uint8Array([1, this.prng.int(256)]));
    const clients = sha256(new Uint8Array([2]));
    const digest = stateDigestOfParts(sha256, root, clients, membershipDigest(sha256, membership));
    const vote = signAs(sim, host, { type: 'checkpoint', seq: since, digest, replica: host.id, epoch }) as Signed<CheckpointMsg>;
    sim.count('byzantine-config-lie');
    return { epoch, cert: { epoch, seq: since, digest, proof: [vote, vote, vote] }, root, clients, membership };
  }
}

/** Several behaviours applied in turn. */
export class Combined implements Behavior {
  readonly name: string;
  constructor(private readonly parts: Behavior[]) {
    this.name = parts.map((p) => p.name).join('+');
  }
  outgoing(sim: World, host: WorldHost, replica: Replica, messages: OutMessage[], replies: Replies) {
    let cur = { messages, replies };
    for (const p of this.parts) cur = p.outgoing(sim, host, replica, cur.messages, cur.replies);
    return cur;
  }
  tick(sim: World, host: WorldHost, replica: Replica): void {
    for (const p of this.parts) p.tick?.(sim, host, replica);
  }
  readOnly(op: Uint8Array, ctx: ExecuteContext): Uint8Array | undefined {
    for (const p of this.parts) {
      const answer = p.readOnly?.(op, ctx);
      if (answer !== undefined) return answer;
    }
    return undefined;
  }
}

/**
 * Serves stale state on reads: answers every read-only request from a copy of its state taken when
 * it last refreshed (`freeze()`, or every `refreshTicks` when given), validly signed, while it
 * orders and executes honestly. A correct client must never accept such an answer for a read that
 * started after a write completed (src/core/reads.ts). Not among BEHAVIOR_NAMES: the swarm's
 * clients send no reads; test/sim/reads.test.ts uses it.
 */
export class StaleReads implements Behavior {
  readonly name = 'stale-reads';
  private frozen?: KvStore;
  private frozenAt = -Infinity;
  private freezeWanted = true;
  /** Answers served from the stale copy. */
  served = 0;
  constructor(private readonly refreshTicks?: number) {}

  /** Takes a copy of the replica's state at its next tick, served from then on. */
  freeze(): void {
    this.freezeWanted = true;
  }

  outgoing(_s: World, _h: WorldHost, _r: Replica, messages: OutMessage[], replies: Replies) {
    return { messages, replies };
  }

  tick(sim: World, _host: WorldHost, replica: Replica): void {
    const due = this.refreshTicks !== undefined && sim.now - this.frozenAt >= this.refreshTicks;
    if (!this.freezeWanted && !due) return;
    this.freezeWanted = false;
    this.frozenAt = sim.now;
    const copy = new KvStore({ partitionCount: replica.app.partitionCount });
    const r = copy.restore(replica.app.snapshot());
    if (!r.ok) throw new Error(`stale-reads: ${r.reason}`);
    this.frozen = copy;
  }

  readOnly(op: Uint8Array, ctx: ExecuteContext): Uint8Array | undefined {
    if (!this.frozen) return undefined;
    this.served++;
    return this.frozen.execute(op, ctx);
  }
}

export function makeBehavior(name: BehaviorName, prng: Prng, sim: World, self: number): Behavior {
  switch (name) {
    case 'silent':
      return new Silent();
    case 'selective-silent': {
      const peers = new Set<number>();
      for (let r = 0; r < sim.n; r++) if (r !== self && prng.chance(0.5)) peers.add(r);
      return new SelectiveSilent(peers);
    }
    case 'wrong-digest':
      return new WrongDigest(prng.fork(), 0.2 + prng.float() * 0.8);
    case 'wrong-result':
      return new WrongResult(prng.fork());
    case 'equivocate':
      return new Equivocate(prng.fork());
    case 'slow-primary': {
      const timeout = sim.opts.replica.viewChangeTimeoutTicks ?? 100;
      return new SlowPrimary(Math.max(1, Math.floor(timeout * (0.5 + 0.4 * prng.float()))));
    }
    case 'forge':
      return new Forge(prng.fork());
    case 'replay':
      return new Replay(prng.fork());
    case 'malformed':
      return new Malformed(prng.fork());
    case 'omit-certificates':
      return new OmitCertificates();
    case 'vote-all':
      return new VoteAll();
    case 'corrupt-transfer':
      return new CorruptTransfer(prng.fork());
    default: {
      const never: never = name;
      throw new Error(`unknown behaviour ${String(never)}`);
    }
  }
}
