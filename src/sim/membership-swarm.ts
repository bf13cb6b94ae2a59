/**
 * The membership swarm: each seed draws a sequence of reconfigurations (replicas join from the
 * spare hosts, members quit) and the faults that run beside them (crashes and restarts, a replica
 * cut off by a partition, lossy links, at most one byzantine replica: one that lies about
 * the configuration, or another of the swarm's behaviours), then a liveness phase in which every
 * client must finish. Besides every checker of the simulator, a configuration-agreement check: no
 * correct replica may know, for an epoch, another configuration than the one correct replicas
 * executed (the negative control `trust-epoch-proofs` — configurations taken from proofs without
 * checking them, i.e. a new configuration in force without consensus — must be caught by it).
 */
import { bytesEqual } from '../core/auth.ts';
import { encodeMembership, type MemberConfig } from '../core/membership.ts';
import { Combined, ConfigLiar, makeBehavior, type Behavior } from './byzantine.ts';
import { SimCluster } from './cluster.ts';
import type { Violation } from './checkers.ts';
import { Prng } from './prng.ts';
import { drawCheckpointSlices } from './swarm.ts';

export interface MembershipSeedReport {
  seed: number;
  ticks: number;
  changes: string[];
  byzantine?: string;
  epoch: number;
  members: number[];
  requestsCommitted: number;
  faults: Record<string, number>;
  /** Evidence of correct replicas checked when served, and of it what waited for an epoch proof first. */
  evidence: { checked: number; waited: number };
  violations: Violation[];
}

const SPARES = 3;
const ORIGINAL = 4;

export function runMembershipSeed(seed: number, options: { negative?: 'trust-epoch-proofs' } = {}): MembershipSeedReport {
  const prng = new Prng(seed ^ 0x3e3b);
  const negative = options.negative === 'trust-epoch-proofs';
  // Joins and removals meet checkpoints in progress in half the seeds.
  const slices = drawCheckpointSlices(seed);
  const sim = new SimCluster({
    ...(slices !== undefined ? { replica: slices } : {}),
    seed,
    f: 1,
    spareReplicas: SPARES,
    operator: true,
    clients: 4,
    requestsPerClient: 120,
    keySpace: 6,
    network: { loss: prng.float() * 0.03, duplication: prng.float() * 0.03, delayTicksMin: 1, delayTicksMax: 1 + prng.int(4) },
    ...(negative ? { unsafeTrustEpochProofs: true } : {}),
  });
  sim.keepEvents = true;
  // One byzantine replica among the first four, half of the time (always for the negative control:
  // the liar is what a build that trusts proofs falls for).
  let byzantine: { id: number; name: string } | undefined;
  if (negative || prng.chance(0.5)) {
    const id = 1 + prng.int(ORIGINAL - 1);
    const other = prng.pick(['silent', 'equivocate', 'wrong-result', 'corrupt-transfer', 'forge'] as const);
    const parts: Behavior[] = negative || prng.chance(0.6) ? [new ConfigLiar(prng.fork())] : [];
    if (!negative && (parts.length === 0 || prng.chance(0.3))) parts.push(makeBehavior(other, prng.fork(), sim, id));
    sim.hosts[id]!.byzantine = parts.length === 1 ? parts[0]! : new Combined(parts);
    byzantine = { id, name: parts.map((p) => p.name).join('+') };
  }
  const correct = (id: number): boolean => byzantine?.id !== id;
  const violations: Violation[] = [];
  const members = (): number[] => {
    const r = sim.hosts.find((h) => h.replica && correct(h.id) && h.replica.status().member)?.replica;
    return r ? r.status().members : [0, 1, 2, 3];
  };
  const epochNow = (): number => Math.max(...sim.hosts.filter((h) => h.replica && correct(h.id)).map((h) => h.replica!.status().epoch));

  // Faults beside the changes: only when they keep the cluster within f (no crash with a byzantine
  // replica at f = 1).
  const down = new Map<number, number>();
  // A partition: one replica cut off from every other node (replicas and clients) for a while.
  let isolated: { id: number; until: number } | undefined;
  const nodes = sim.hosts.length + sim.clients.length;
  const faultStep = (): void => {
    for (const [id, until] of [...down]) {
      if (sim.now >= until) {
        sim.restart(id);
        down.delete(id);
      }
    }
    if (isolated && sim.now >= isolated.until) {
      sim.net.heal();
      isolated = undefined;
    }
    const n = members().length;
    const f = Math.floor((n - 1) / 3);
    const budget = f - (byzantine ? 1 : 0) - down.size - (isolated ? 1 : 0);
    if (budget > 0 && prng.chance(0.006)) {
      const candidates = members().filter((id) => correct(id) && !down.has(id) && sim.hosts[id]!.replica);
      if (candidates.length > 0) {
        const id = prng.pick(candidates);
        if (prng.chance(0.5)) {
          sim.crash(id);
          down.set(id, sim.now + 50 + prng.int(400));
        } else {
          for (let x = 0; x < nodes; x++) {
            if (x === id) continue;
            sim.net.cutLink(id, x);
            sim.net.cutLink(x, id);
          }
          isolated = { id, until: sim.now + 100 + prng.int(500) };
          sim.count('partition-isolate');
        }
      }
    }
  };
  // A configuration that no correct replica should know ends the run at once (checked every 200
  // ticks): a broken build need not run into the liveness bounds to be caught.
  let disagreement: Violation[] = [];
  const runFor = (ticks: number, until?: () => boolean): boolean => {
    for (let i = 0; i < ticks; i++) {
      if (until?.()) return true;
      faultStep();
      sim.step();
      if (sim.now % 200 === 0 && (disagreement = configurationAgreement(sim, correct)).length > 0) return false;
    }
    return until?.() ?? true;
  };

  // The changes: three joins and two removals in a random order that keeps n >= 4.
  const changes: string[] = [];
  let spare = ORIGINAL;
  const plan: Array<'add' | 'remove'> = prng.shuffle(['add', 'add', 'add', 'remove', 'remove']);
  runFor(100 + prng.int(200));
  for (const kind of plan) {
    const current = members();
    const epoch = epochNow();
    if (kind === 'add' && spare < ORIGINAL + SPARES) {
      const id = spare++;
      sim.reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[id]! });
      changes.push(`+${id}`);
    } else if (current.length > 4) {
      // Never the byzantine replica (it would leave f = 1 with no faulty replica: a weaker run).
      const id = prng.pick(current.filter((r) => correct(r) && !down.has(r)));
      sim.reconfigure({ kind: 'remove-replica', id });
      changes.push(`-${id}`);
    } else continue;
    if (!runFor(6_000, () => epochNow() > epoch)) {
      if (disagreement.length > 0) break;
      violations.push({ kind: 'liveness', check: 'reconfiguration', detail: `seed ${seed}: ${changes.at(-1)} not in force after 6000 ticks (members ${current.join(',')})`, tick: sim.now });
      break;
    }
    runFor(prng.int(150));
  }
  // Liveness phase: every crashed replica back, the network healed and calm; every client finishes.
  for (const id of [...down.keys()]) sim.restart(id);
  down.clear();
  sim.net.heal();
  sim.net.faults = { ...sim.net.faults, loss: 0, duplication: 0 };
  if (disagreement.length === 0 && !sim.runUntil(() => sim.allClientsDone(), 40_000)) {
    violations.push({ kind: 'liveness', check: 'clients', detail: `seed ${seed}: clients did not finish`, tick: sim.now });
  }
  sim.finish();
  violations.push(...sim.checker.violations);
  violations.push(...configurationAgreement(sim, correct));
  // The agreed order's requests (a replica's own counter starts afresh with each restart).
  const committed = sim.checker.requestsExecuted;
  return {
    seed,
    ticks: sim.now,
    changes,
    ...(byzantine ? { byzantine: `${byzantine.id}:${byzantine.name}` } : {}),
    epoch: epochNow(),
    members: members(),
    requestsCommitted: committed,
    faults: { ...sim.faults },
    evidence: { ...sim.evidenceServed },
    violations,
  };
}

/**
 * Every configuration a correct replica knows, by epoch, is the one correct replicas executed (the
 * reconfiguration ordered through consensus): no correct replica takes in a configuration that
 * was not agreed.
 */
function configurationAgreement(sim: SimCluster, correct: (id: number) => boolean): Violation[] {
  const reference = new Map<number, { bytes: Uint8Array; replica: number }>();
  const out: Violation[] = [];
  const encode = (c: MemberConfig): Uint8Array => encodeMembership({ current: c });
  for (const h of sim.hosts) {
    if (!h.replica || !correct(h.id)) continue;
    for (const [epoch, config] of h.replica.configs) {
      const bytes = encode(config);
      const ref = reference.get(epoch);
      if (!ref) reference.set(epoch, { bytes, replica: h.id });
      else if (!bytesEqual(ref.bytes, bytes)) {
        out.push({
          kind: 'correctness',
          check: 'configuration-agreement',
          detail: `epoch ${epoch}: replica ${h.id} knows replicas ${config.replicas.map((r) => r.id).join(',')}, replica ${ref.replica} another configuration`,
          tick: sim.now,
        });
      }
    }
  }
  // And what they executed: the reconfigurations of the agreed order.
  const executed = new Map<number, number[]>();
  for (const e of sim.events) {
    if (e.event.type === 'reconfiguration' && e.event.result.ok && correct(e.replica)) executed.set(e.event.result.epoch, e.event.result.replicas);
  }
  for (const h of sim.hosts) {
    if (!h.replica || !correct(h.id)) continue;
    for (const [epoch, config] of h.replica.configs) {
      const ids = executed.get(epoch);
      if (epoch > 0 && ids === undefined) {
        out.push({ kind: 'correctness', check: 'configuration-agreement', detail: `replica ${h.id} knows epoch ${epoch} (replicas ${config.replicas.map((r) => r.id).join(',')}), which no correct replica executed`, tick: sim.now });
      } else if (ids && ids.join(',') !== config.replicas.map((r) => r.id).join(',')) {
        out.push({ kind: 'correctness', check: 'configuration-agreement', detail: `replica ${h.id}: epoch ${epoch} is ${config.replicas.map((r) => r.id).join(',')}, the agreed order made it ${ids.join(',')}`, tick: sim.now });
      }
    }
  }
  return out;
}
