/**
 * The seeded swarm, in the style of TigerBeetle's VOPR: every seed draws its own fault parameters
 * (network loss, duplication and delay, partitions, crashes, wiped disks, byzantine replicas and
 * clients), runs a fault phase, then a liveness phase (faults stop, the network heals, crashed
 * replicas restart) in which every request must be answered within a bound. The same seed always
 * replays the same run.
 *
 * In the crash-fault mode (`faultModel: 'crash'`, n = 2f+1) the replicas only crash (at every point
 * of the turn pipeline, losing what was not synced), restart, pause, and get cut off or lose,
 * duplicate and reorder messages: no byzantine replica, no wiped or damaged disk (a replica that
 * forgets what it promised is not a crash fault; Paxos and Raft do not survive it either). Clients
 * may still misbehave: signatures keep them from hurting anyone but themselves in both modes.
 */
import type { RepliesMode } from '../client/repliers.ts';
import { encodeOp } from '../app/kv-ops.ts';
import { RequestSigner } from '../client/request.ts';
import { encodeSignedFrame } from '../codec/messages.ts';
import { BEHAVIOR_NAMES, Combined, makeBehavior, type BehaviorName } from './byzantine.ts';
import { CRASH_KINDS, SimCluster, type SimOptions } from './cluster.ts';
import type { Violation, ViolationKind } from './checkers.ts';
import { Prng } from './prng.ts';
import { EVIDENCE_KINDS, type EvidenceKind } from '../core/evidence.ts';
import type { FaultModel } from '../core/cluster.ts';
import { faultsOf, replicasFor } from '../core/quorum.ts';

export const NEGATIVE_CONTROLS = ['commit-quorum', 'prepare-quorum', 'recovery-quorum', 'too-many-byzantine', 'reply-before-write', 'ignore-lost-data', 'crash-quorum-f', 'no-abstain', 'clean-before-drain'] as const;
export type NegativeControl = (typeof NEGATIVE_CONTROLS)[number];

export interface SwarmOptions {
  replicas: number;
  /** Default byzantine (replicas = 3f+1); crash: replicas = 2f+1 and only crash faults (see above). */
  faultModel?: FaultModel;
  /** Negative controls: a broken build that the checkers must catch. */
  negative?: NegativeControl;
  /** With `negative`: draw that control's faults but run the correct build (which must pass). */
  planOnly?: boolean;
  /** Ticks of the liveness phase before a liveness violation is declared. */
  livenessTicksMax?: number;
  /** Negative controls only: checks whose violations are not recorded (Checker.ignoredChecks). */
  ignoreChecks?: readonly string[];
  /**
   * Clean stops of correct replicas (SimCluster.stopCleanly) in about 40% of the seeds, drawn from a
   * stream of their own (default true; false replays a seed as it ran before they existed).
   */
  cleanStops?: boolean;
  /**
   * Checkpoints computed over several turns, a partition or a few per turn (the replica option
   * checkpointSliceBytes), in about half the seeds, drawn from a stream of their own (default true;
   * false replays a seed as it ran before they existed).
   */
  checkpointSlices?: boolean;
  /**
   * Which replicas the clients ask to reply (src/client/repliers.ts): default 'quorum', as the SDK;
   * 'all' replays a seed as it ran before requests named their repliers.
   */
  clientReplies?: RepliesMode;
  /** Called with the cluster before the run starts (src/sim/trace.ts records a seed's timeline). */
  observe?: (sim: SimCluster) => void;
}

export interface SeedReport {
  seed: number;
  replicas: number;
  ticks: number;
  faults: Record<string, number>;
  byzantine: string[];
  requestsCommitted: number;
  viewChanges: number;
  /** The longest time (ticks) a paused replica took, after it resumed, to be in the others' view again (0: no pause). */
  pauseRecoveryTicksMax: number;
  violations: Violation[];
  /** The first violation's kind, if any. */
  kind?: ViolationKind;
  /**
   * Equivocation evidence that correct replicas (votes) and clients (replies) produced, by kind; how
   * much named a wiped replica; the replicas named (all byzantine or wiped, or a violation says so).
   */
  evidence: { byKind: Record<EvidenceKind, number>; againstWiped: number; signers: number[] };
  elapsedMs: number;
}

interface Plan {
  loss: number;
  duplication: number;
  delayMax: number;
  faultTicks: number;
  partitions: boolean;
  crashes: boolean;
  crashRate: number;
  /** Ticks a crashed replica stays down, at most. */
  downTicksMax: number;
  /** Ticks a synced write takes, at most (drawn per write). */
  diskLatencyMax: number;
  wipe: boolean;
  /** Revert one correct replica's records to an older image (its horizon record stays). */
  damage: boolean;
  byzantine: Array<{ id: number; behaviors: BehaviorName[]; twins: boolean }>;
  byzantineClient: boolean;
  clients: number;
  requestsPerClient: number;
}

function drawPlan(prng: Prng, n: number, f: number, negative: SwarmOptions['negative'], model: FaultModel): Plan {
  const ids = prng.shuffle(Array.from({ length: n }, (_, i) => i));
  const byzantine: Plan['byzantine'] = [];
  const crashOnly = model === 'crash';
  if (crashOnly) {
    // No byzantine replica: the mode does not claim to survive one.
  } else if (negative === 'too-many-byzantine') {
    // f+1 colluders: the primary of view 0 equivocates and, with f accomplices, votes for everything.
    byzantine.push({ id: 0, behaviors: ['equivocate', 'vote-all'], twins: false });
    for (const id of ids.filter((i) => i !== 0).slice(0, f)) byzantine.push({ id, behaviors: ['vote-all'], twins: false });
  } else if (negative === 'prepare-quorum' || negative === 'recovery-quorum') {
    // An equivocating primary of view 0: with too small a prepare quorum, both of its versions prepare.
    byzantine.push({ id: 0, behaviors: ['equivocate'], twins: false });
  } else if (negative === 'commit-quorum' || negative === 'reply-before-write') {
    // f replicas that vote for everything (COMMITs as soon as they see a pre-prepare) and hide their
    // certificates in view changes.
    for (const id of ids.slice(0, f)) byzantine.push({ id, behaviors: ['vote-all', 'omit-certificates'], twins: false });
  } else {
    const byzCount = prng.int(f + 1);
    for (let k = 0; k < byzCount; k++) {
      const count = 1 + prng.int(2);
      const behaviors = new Set<BehaviorName>();
      while (behaviors.size < count) behaviors.add(prng.pick(BEHAVIOR_NAMES));
      byzantine.push({ id: ids[k]!, behaviors: [...behaviors], twins: prng.chance(0.15) });
    }
  }
  const byzCount = byzantine.length;
  // A wiped disk forgets what the replica signed: it counts against f like a byzantine replica. A
  // damaged one must notice and stay safe; it stays silent in view changes for a while, so it too is
  // drawn only where that leaves a quorum of correct replicas (liveness).
  const wipe = !crashOnly && negative !== 'ignore-lost-data' && byzCount < f && prng.chance(0.25);
  const damage = !crashOnly && (negative === 'ignore-lost-data' || (!wipe && byzCount < f && prng.chance(0.25)));
  return {
    loss: prng.chance(0.2) ? 0 : prng.float() * 0.3,
    duplication: prng.chance(0.3) ? 0 : prng.float() * 0.5,
    delayMax: prng.range(2, 25),
    faultTicks: prng.range(1500, 5000),
    partitions: prng.chance(0.6),
    // (crash mode: crashes are what it is about, so every seed has them)
    crashes: crashOnly || negative === 'reply-before-write' || negative === 'recovery-quorum' || negative === 'no-abstain' || prng.chance(0.5),
    // (recovery-quorum, no-abstain: frequent, short crashes, so that restarts fall within a view,
    // between a pre-prepare and its quorum of prepares)
    crashRate: negative === 'recovery-quorum' || negative === 'no-abstain' ? 0.03 : 0.0005 + prng.float() * 0.003,
    downTicksMax: negative === 'recovery-quorum' || negative === 'no-abstain' ? 30 : 1000,
    diskLatencyMax: prng.pick([0, 0, 1, 2, 4]),
    wipe,
    damage,
    byzantine,
    byzantineClient: prng.chance(0.3),
    clients: 4,
    requestsPerClient: prng.range(15, 40),
  };
}

/** Partition kinds: one replica isolated, a random split, the primary cut off, send-only / receive-only. */
function applyPartition(sim: SimCluster, prng: Prng): string {
  const n = sim.n;
  const nodes = n + sim.clients.length;
  const cutBoth = (a: number, b: number): void => {
    sim.net.cutLink(a, b);
    sim.net.cutLink(b, a);
  };
  const kind = prng.pick(['isolate', 'split', 'primary', 'send-only', 'receive-only'] as const);
  switch (kind) {
    case 'isolate': {
      const r = prng.int(n);
      for (let x = 0; x < nodes; x++) if (x !== r) cutBoth(r, x);
      break;
    }
    case 'split': {
      const side = Array.from({ length: nodes }, () => prng.chance(0.5));
      for (let a = 0; a < nodes; a++) for (let b = 0; b < nodes; b++) if (side[a] !== side[b]) sim.net.cutLink(a, b);
      break;
    }
    case 'primary': {
      const views = sim.correctReplicas().map((r) => r.view);
      const p = (views.length ? Math.max(...views) : 0) % n;
      for (let x = 0; x < nodes; x++) if (x !== p) cutBoth(p, x);
      break;
    }
    case 'send-only': {
      const r = prng.int(n);
      for (let x = 0; x < nodes; x++) if (x !== r) sim.net.cutLink(x, r);
      break;
    }
    case 'receive-only': {
      const r = prng.int(n);
      for (let x = 0; x < nodes; x++) if (x !== r) sim.net.cutLink(r, x);
      break;
    }
  }
  return kind;
}

/** A byzantine client: bad signatures, reused timestamps with different operations, floods. */
function byzantineClientTick(sim: SimCluster, prng: Prng, signer: RequestSigner, state: { ts: number }): void {
  if (!prng.chance(0.05)) return;
  const node = sim.clientNode(signer.clientId);
  const to = prng.int(sim.n);
  const issue = (ts: number, op: Uint8Array) => {
    let issued = sim.extraIssued.get(signer.clientId);
    if (!issued) sim.extraIssued.set(signer.clientId, (issued = new Map()));
    issued.set(ts, op);
    return signer.sign(ts, op);
  };
  switch (prng.int(3)) {
    case 0: {
      const req = signer.sign(++state.ts, encodeOp({ type: 'put', key: 'byz', value: 'x' }));
      const sig = new Uint8Array(req.sig);
      sig[prng.int(64)]! ^= 1;
      sim.inject(node, to, encodeSignedFrame({ ...req, sig }));
      sim.count('client-bad-signature');
      break;
    }
    case 1: {
      // Two different operations under one timestamp (only one of them is remembered as issued:
      // whichever executes must be one the client signed, so register both under distinct keys).
      const ts = ++state.ts;
      const a = encodeOp({ type: 'put', key: `b${prng.int(4)}`, value: 'a' });
      const b = encodeOp({ type: 'put', key: `b${prng.int(4)}`, value: 'b' });
      const reqA = signer.sign(ts, a);
      const reqB = signer.sign(ts, b);
      // Either may be ordered; the validity check accepts the one that executes if it was signed.
      sim.extraIssuedAlternatives.set(`${signer.clientId}:${ts}`, [a, b]);
      sim.inject(node, to, encodeSignedFrame(reqA));
      sim.inject(node, (to + 1) % sim.n, encodeSignedFrame(reqB));
      sim.count('client-reused-timestamp');
      break;
    }
    default: {
      for (let i = 0; i < 20; i++) {
        const req = issue(++state.ts, encodeOp({ type: 'get', key: `k${prng.int(8)}` }));
        sim.inject(node, prng.int(sim.n), encodeSignedFrame(req));
      }
      sim.count('client-flood');
    }
  }
}

/**
 * Half the seeds compute their checkpoints over several turns (a partition or a few per turn) while
 * execution goes on, so crashes, transfers, view changes and reconfigurations meet one in progress:
 * the replica options for `seed`, or undefined. Drawn from a generator of its own, so a seed's other
 * draws (its plan, and so the regression seeds) stay what they were.
 */
export function drawCheckpointSlices(seed: number): { checkpointSliceBytes: number } | undefined {
  const prng = new Prng(seed ^ 0xc4ec);
  return prng.chance(0.5) ? { checkpointSliceBytes: 1 + prng.int(48) } : undefined;
}

export function runSeed(seed: number, options: SwarmOptions): SeedReport {
  const started = Date.now();
  const n = options.replicas;
  const model = options.faultModel ?? 'byzantine';
  const f = faultsOf(n, model);
  if (f < 1 || replicasFor(f, model) !== n) throw new RangeError(`replicas must be ${model === 'crash' ? '2f+1' : '3f+1'} with f >= 1, got ${n}`);
  if (options.negative !== undefined && (options.negative === 'crash-quorum-f') !== (model === 'crash')) {
    throw new RangeError(`negative control ${options.negative} is for the ${options.negative === 'crash-quorum-f' ? 'crash' : 'byzantine'} fault model`);
  }
  const prng = new Prng(seed ^ 0x5eed);
  const plan = drawPlan(prng, n, f, options.negative, model);
  const simOptions: Partial<SimOptions> = {
    seed,
    f,
    ...(model === 'crash' ? { faultModel: model } : {}),
    clients: plan.clients,
    requestsPerClient: plan.requestsPerClient,
    network: { loss: plan.loss, duplication: plan.duplication, delayTicksMin: 1, delayTicksMax: plan.delayMax },
    compress: prng.chance(0.3),
    diskLatencyTicksMax: plan.diskLatencyMax,
  };
  const slices = options.checkpointSlices !== false ? drawCheckpointSlices(seed) : undefined;
  if (slices !== undefined) simOptions.replica = slices;
  if (options.clientReplies !== undefined) simOptions.clientReplies = options.clientReplies;
  const broken = options.planOnly ? undefined : options.negative;
  if (broken === 'commit-quorum') simOptions.unsafeQuorum = { commits: 2 * f };
  if (broken === 'prepare-quorum') simOptions.unsafeQuorum = { prepares: 2 * f - 1 };
  if (broken === 'recovery-quorum') simOptions.unsafeRecoveryQuorum = { prepares: 0 };
  if (broken === 'reply-before-write') simOptions.unsafeReplyBeforeWrite = true;
  if (broken === 'ignore-lost-data') simOptions.unsafeIgnoreLostData = true;
  // A restarted replica votes at once, though PRE-PREPAREs and PREPAREs it sent unwritten are lost.
  if (broken === 'no-abstain') simOptions.unsafeNoAbstain = true;
  // A clean stop writes its record before its deferred writes: the restart votes at once without them.
  if (broken === 'clean-before-drain') simOptions.unsafeCleanBeforeDrain = true;
  // Crash mode with quorums of f instead of f+1: a prepared certificate of f replicas (the
  // PRE-PREPARE and f-1 PREPAREs) and f COMMITs. Two such quorums need not share a replica.
  if (broken === 'crash-quorum-f') simOptions.unsafeQuorum = { prepares: f - 1, commits: f };
  const sim = new SimCluster(simOptions);
  sim.keepEvents = false;
  for (const check of options.ignoreChecks ?? []) sim.checker.ignoredChecks.add(check);
  options.observe?.(sim);
  if (plan.loss > 0) sim.count('network-loss');
  if (plan.duplication > 0) sim.count('network-duplication');
  for (const b of plan.byzantine) {
    const behaviors = b.behaviors.map((name) => makeBehavior(name, prng.fork(), sim, b.id));
    sim.hosts[b.id]!.byzantine = new Combined(behaviors);
    for (const name of b.behaviors) sim.count(`byzantine-${name}`);
    if (b.twins) {
      const peers = Array.from({ length: n }, (_, i) => i).filter((i) => i !== b.id && prng.chance(0.5));
      sim.makeTwins(b.id, peers);
    }
  }
  const byzSigner = new RequestSigner(sim.cluster, plan.clients, sim.spareClientSigners[0]!, sim.keys.verifier);
  const byzState = { ts: 0 };
  const byzantineIds = new Set(plan.byzantine.map((b) => b.id));
  const correctIds = Array.from({ length: n }, (_, i) => i).filter((i) => !byzantineIds.has(i));
  const wipeTarget = plan.wipe ? prng.pick(correctIds) : -1;
  const damageTarget = plan.damage ? prng.pick(correctIds) : -1;
  if (damageTarget >= 0) sim.keepImages(damageTarget, prng.range(80, 300));
  const damageAt = prng.range(Math.floor(plan.faultTicks / 3), Math.floor((2 * plan.faultTicks) / 3));
  let damaged = false;
  const downUntil = new Map<number, number>();
  let partitionUntil = 0;
  let nextPartition = prng.range(50, 400);
  let wiped = false;

  // Pauses (SIGSTOP of 0.5-15 s, then a burst of missed ticks) are drawn from their own stream, so
  // that adding them left every other draw of a seed as it was.
  const pausePrng = new Prng(seed ^ 0x9a05e);
  const pauses = !options.planOnly && pausePrng.chance(0.4);
  // Clean stops (SIGTERM: the pipeline drains, then the clean record; the restart votes at once), from
  // a stream of their own as well; frequent and short for their negative control.
  const stopPrng = new Prng(seed ^ 0xc1ea5);
  const stopControl = options.negative === 'clean-before-drain';
  const cleanStops = stopControl || (!options.planOnly && options.cleanStops !== false && stopPrng.chance(0.4));
  const cleanStopRate = stopControl ? 0.03 : 1 / 800;

  const violationsAfter = (): boolean => sim.checker.violations.length > 0;
  // Fault phase.
  for (let t = 0; t < plan.faultTicks && !violationsAfter(); t++) {
    if (plan.partitions) {
      if (sim.now >= nextPartition && partitionUntil === 0) {
        sim.count(`partition-${applyPartition(sim, prng)}`);
        partitionUntil = sim.now + prng.range(50, 800);
      } else if (partitionUntil !== 0 && sim.now >= partitionUntil) {
        sim.net.heal();
        partitionUntil = 0;
        nextPartition = sim.now + prng.range(50, 600);
      }
    }
    if (plan.crashes && prng.chance(plan.crashRate)) {
      const id = prng.pick(correctIds);
      if (sim.hosts[id]!.replica && !sim.hosts[id]!.armed) {
        // A crash at a random moment, or armed at a point of the turn pipeline (sim.armCrash).
        const kind = prng.pick(CRASH_KINDS);
        if (kind === 'crash') sim.crash(id);
        else sim.armCrash(id, kind);
        downUntil.set(id, sim.now + prng.range(Math.min(20, plan.downTicksMax), plan.downTicksMax));
      }
    }
    if (wipeTarget >= 0 && !wiped && sim.now > plan.faultTicks / 3) {
      sim.crash(wipeTarget);
      sim.wipe(wipeTarget);
      downUntil.set(wipeTarget, sim.now + prng.range(20, 500));
      wiped = true;
    }
    if (damageTarget >= 0 && !damaged && sim.now >= damageAt) {
      sim.crash(damageTarget);
      sim.damage(damageTarget, prng.int(2));
      downUntil.set(damageTarget, sim.now + prng.range(20, 300));
      damaged = true;
    }
    for (const [id, until] of downUntil) {
      if (sim.now >= until && !sim.hosts[id]!.replica) {
        sim.restart(id);
        downUntil.delete(id);
      }
    }
    if (plan.byzantineClient) byzantineClientTick(sim, prng, byzSigner, byzState);
    if (pauses && pausePrng.chance(1 / 700)) sim.pause(pausePrng.pick(correctIds), pausePrng.range(50, 1_500));
    if (cleanStops && stopPrng.chance(cleanStopRate)) {
      const id = stopPrng.pick(correctIds);
      const host = sim.hosts[id]!;
      if (host.replica && !host.stopping && !host.armed && !downUntil.has(id)) {
        sim.stopCleanly(id);
        downUntil.set(id, sim.now + stopPrng.range(5, stopControl ? 30 : 300));
      }
    }
    sim.step();
  }
  // Liveness phase: faults stop (byzantine replicas stay byzantine), the network heals.
  sim.net.heal();
  sim.net.faults = { loss: 0, duplication: 0, delayTicksMin: 1, delayTicksMax: 3 };
  for (const h of sim.hosts) h.armed = undefined;
  // (a replica still stopping cleanly is cut short: a crash during a stop is an ordinary crash)
  for (const h of sim.hosts) if (h.stopping) sim.crash(h.id);
  for (const h of sim.hosts) if (!h.replica && !byzantineIds.has(h.id)) sim.restart(h.id);
  const healedAt = sim.now;
  const bound = options.livenessTicksMax ?? 20_000;
  const live = violationsAfter() || sim.runUntil(() => sim.allClientsDone() || violationsAfter(), bound);
  if (!live) {
    const stuck = sim.clients.filter((c) => !c.done).map((c) => `client ${c.id} waiting ${c.waitingFor(sim.now)} ticks, ${c.remaining} left`);
    sim.checker.violation('liveness', 'liveness', `not every request answered within ${bound} ticks after healing at ${healedAt}: ${stuck.join('; ')}`, sim.now);
  }
  sim.finish();
  const violations = sim.checker.violations;
  const order: ViolationKind[] = ['crash', 'correctness', 'liveness'];
  const kind = order.find((k) => violations.some((v) => v.kind === k));
  return {
    seed,
    replicas: n,
    ticks: sim.now,
    faults: sim.faults,
    byzantine: plan.byzantine.map((b) => `${b.id}:${b.behaviors.join('+')}${b.twins ? '+twins' : ''}`),
    requestsCommitted: sim.checker.requestsExecuted,
    viewChanges: sim.viewChanges,
    pauseRecoveryTicksMax: Math.max(0, ...sim.pauseRecoveries),
    violations,
    kind,
    evidence: {
      byKind: Object.fromEntries(EVIDENCE_KINDS.map((k) => [k, sim.checker.evidence[k]])) as Record<EvidenceKind, number>,
      againstWiped: sim.checker.evidence.againstWiped,
      signers: [...sim.checker.evidenceSigners].sort((a, b) => a - b),
    },
    elapsedMs: Date.now() - started,
  };
}

export interface SwarmSummary {
  seeds: number;
  replicas: number;
  ticks: number;
  faults: Record<string, number>;
  requestsCommitted: number;
  viewChanges: number;
  /** The longest time (ticks) a paused replica took, after it resumed, to be in the others' view again. */
  pauseRecoveryTicksMax: number;
  failures: SeedReport[];
  /** Equivocation evidence produced over all seeds, by kind, and the seeds that produced any. */
  evidence: Record<EvidenceKind, number>;
  seedsWithEvidence: number;
  elapsedMs: number;
}

export function runSwarm(firstSeed: number, count: number, options: SwarmOptions, onSeed?: (r: SeedReport) => void): SwarmSummary {
  const started = Date.now();
  const summary: SwarmSummary = {
    seeds: 0,
    replicas: options.replicas,
    ticks: 0,
    faults: {},
    requestsCommitted: 0,
    viewChanges: 0,
    pauseRecoveryTicksMax: 0,
    failures: [],
    evidence: Object.fromEntries(EVIDENCE_KINDS.map((k) => [k, 0])) as Record<EvidenceKind, number>,
    seedsWithEvidence: 0,
    elapsedMs: 0,
  };
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const r = runSeed(seed, options);
    summary.seeds++;
    summary.ticks += r.ticks;
    summary.requestsCommitted += r.requestsCommitted;
    summary.viewChanges += r.viewChanges;
    summary.pauseRecoveryTicksMax = Math.max(summary.pauseRecoveryTicksMax, r.pauseRecoveryTicksMax);
    for (const [k, v] of Object.entries(r.faults)) summary.faults[k] = (summary.faults[k] ?? 0) + v;
    let found = 0;
    for (const k of EVIDENCE_KINDS) {
      summary.evidence[k] += r.evidence.byKind[k];
      found += r.evidence.byKind[k];
    }
    if (found > 0) summary.seedsWithEvidence++;
    if (r.kind) summary.failures.push(r);
    onSeed?.(r);
  }
  summary.elapsedMs = Date.now() - started;
  return summary;
}
