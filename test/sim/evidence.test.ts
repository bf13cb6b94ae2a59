/**
 * Equivocation evidence in the simulator (src/core/evidence.ts, src/sim/checkers.ts `onEvidence`).
 *
 * Every piece of evidence a correct replica or client holds is checked as it appears, through the
 * file format and the verifier of `pbft evidence verify`: it must verify and name a byzantine (or
 * wiped) replica. These tests show that equivocating replicas are in fact caught, under a lossy,
 * duplicating network: an equivocating primary (PRE-PREPAREs), a replica that signs wrong digests
 * (PREPAREs and COMMITs), one that signs wrong results (replies, caught by the clients), and Twins
 * (one key, two cores). Counts are printed. Negative controls: the checker flags evidence that does
 * not verify and evidence against a correct replica.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EVIDENCE_KINDS, voteEvidence, type EvidenceKind, type VoteMsg } from '../../src/core/evidence.ts';
import type { Signed } from '../../src/core/messages.ts';
import { makeBehavior, signAs, type BehaviorName } from '../../src/sim/byzantine.ts';
import { SimCluster } from '../../src/sim/cluster.ts';
import { runSwarm } from '../../src/sim/swarm.ts';
import { sha256 } from '../../src/sim/crypto.ts';

interface Run {
  seed: number;
  evidence: Record<EvidenceKind, number>;
  signers: number[];
  heldByReplicas: number;
  violations: string[];
}

/** One run: replica `byz` misbehaves (or runs as Twins); clients until done; the checkers' verdict. */
function run(seed: number, behavior: BehaviorName | 'twins', byz: number): Run {
  const sim = new SimCluster({
    seed,
    clients: 4,
    requestsPerClient: 25,
    network: { loss: 0.05, duplication: 0.1, delayTicksMin: 1, delayTicksMax: 6 },
  });
  sim.keepEvents = false;
  if (behavior === 'twins') sim.makeTwins(byz, [1, 2].filter((r) => r !== byz));
  else sim.hosts[byz]!.byzantine = makeBehavior(behavior, sim.prng.fork(), sim, byz);
  sim.runUntil(() => sim.allClientsDone() || sim.checker.violations.length > 0, 30_000);
  sim.finish();
  const { againstWiped: _, ...evidence } = sim.checker.evidence;
  const heldByReplicas = sim.correctReplicas().reduce((sum, r) => sum + r.status().evidence.held, 0);
  return {
    seed,
    evidence,
    signers: [...sim.checker.evidenceSigners],
    heldByReplicas,
    violations: sim.checker.violations.map((v) => `${v.check}: ${v.detail.split('\n')[0]}`),
  };
}

function caught(behavior: BehaviorName | 'twins', byz: number, kinds: EvidenceKind[], seeds: number[]): Run[] {
  const runs = seeds.map((s) => run(s, behavior, byz));
  for (const r of runs) {
    assert.deepEqual(r.violations, [], `seed ${r.seed}: violations`);
    for (const s of r.signers) assert.equal(s, byz, `seed ${r.seed}: evidence against replica ${s}`);
  }
  const total = (k: EvidenceKind): number => runs.reduce((sum, r) => sum + r.evidence[k], 0);
  const withEvidence = runs.filter((r) => kinds.some((k) => r.evidence[k] > 0)).length;
  process.stderr.write(
    `${behavior} (replica ${byz}), seeds ${seeds[0]}..${seeds[seeds.length - 1]}: caught in ${withEvidence} of ${runs.length} seeds; ` +
      `evidence ${EVIDENCE_KINDS.map((k) => `${k}=${total(k)}`).join(' ')}; ` +
      `held by correct replicas at the end: ${runs.reduce((s, r) => s + r.heldByReplicas, 0)}\n`,
  );
  assert.ok(withEvidence > 0, `${behavior}: no ${kinds.join('/')} evidence in ${runs.length} seeds`);
  return runs;
}

const seeds = (first: number, count: number): number[] => Array.from({ length: count }, (_, i) => first + i);

test('an equivocating primary is caught: two PRE-PREPAREs of replica 0 for one (view, seq), held by correct replicas', () => {
  caught('equivocate', 0, ['preprepare'], seeds(1, 8));
});

test('a replica that re-signs its votes with wrong digests is caught: conflicting PREPAREs and COMMITs', () => {
  caught('wrong-digest', 2, ['prepare', 'commit', 'mixed'], seeds(1, 6));
});

test('a replica that signs wrong results is caught by the clients: two different REPLYs for one request', () => {
  caught('wrong-result', 1, ['reply'], seeds(1, 6));
});

test('Twins (two cores, one key, each talking to some replicas) are caught through certificates: a PRE-PREPARE and a COMMIT of replica 0 that disagree', () => {
  caught('twins', 0, ['preprepare', 'prepare', 'commit', 'mixed'], seeds(1, 6));
});

test('the swarm: evidence only against byzantine or wiped replicas, and it verifies (seeds 1..25, counts)', () => {
  const s = runSwarm(1, 25, { replicas: 4 });
  assert.deepEqual(
    s.failures.map((r) => `${r.seed}: ${r.violations[0]?.check}`),
    [],
  );
  const total = Object.values(s.evidence).reduce((a, b) => a + b, 0);
  process.stderr.write(`swarm n=4 seeds 1..25: evidence ${Object.entries(s.evidence).map(([k, v]) => `${k}=${v}`).join(' ')} in ${s.seedsWithEvidence} seeds\n`);
  assert.ok(total > 0, 'no evidence in 25 swarm seeds');
});

test('negative controls: the checker flags evidence that does not verify, and evidence against a correct replica', () => {
  const sim = new SimCluster({ seed: 3, clients: 1, requestsPerClient: 1 });
  const host = sim.hosts[1]!;
  const vote = (d: string): Signed<VoteMsg> => signAs(sim, host, { type: 'prepare', view: 0, seq: 1, digest: sha256(new TextEncoder().encode(d)), replica: 1 }) as Signed<VoteMsg>;
  const a = vote('a');
  const b = vote('b');
  // Replica 1 is correct in this run: verified evidence against it must be a violation.
  (sim as unknown as { checkEvidence(h: string, e: unknown, p: Map<number, unknown>): void }).checkEvidence('replica 0', voteEvidence(a, b, 0), new Map());
  // A forged signature: evidence that does not verify.
  const forged = { ...b, sig: new Uint8Array(64) };
  (sim as unknown as { checkEvidence(h: string, e: unknown, p: Map<number, unknown>): void }).checkEvidence('replica 0', voteEvidence(a, forged, 0), new Map());
  assert.deepEqual(
    sim.checker.violations.map((v) => v.check),
    ['evidence-against-correct', 'evidence-invalid'],
  );
});
