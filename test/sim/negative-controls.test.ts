/**
 * Negative controls: a checker that cannot catch a broken build proves nothing. Two broken builds
 * run on the same seeds as a correct one; the checkers must catch each broken build (a correctness
 * violation, or a correct replica crashing on its "committed with two digests" invariant), and must
 * stay silent for the correct build on those seeds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSwarm } from '../../src/sim/swarm.ts';

const SEEDS = 40;

test('a commit quorum of 2f (instead of 2f+1) is caught by the checkers', () => {
  const broken = runSwarm(1, SEEDS, { replicas: 4, negative: 'commit-quorum' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= 5, `only ${caught.length} of ${SEEDS} seeds caught the broken commit quorum`);
  const safetyChecks = new Set(caught.flatMap((r) => r.violations.map((v) => v.check)));
  process.stderr.write(`commit quorum 2f: caught in ${caught.length}/${SEEDS} seeds by ${[...safetyChecks].join(', ')}\n`);
});

test('f+1 byzantine replicas (an equivocating primary with f accomplices) are caught by the checkers', () => {
  const broken = runSwarm(1, SEEDS, { replicas: 4, negative: 'too-many-byzantine' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= 5, `only ${caught.length} of ${SEEDS} seeds caught f+1 byzantine replicas`);
  process.stderr.write(`f+1 byzantine: caught in ${caught.length}/${SEEDS} seeds\n`);
});

test('f+1 byzantine replicas break agreement for n=7 too', () => {
  const broken = runSwarm(1, 20, { replicas: 7, negative: 'too-many-byzantine' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= 2, `only ${caught.length} of 20 seeds caught 3 byzantine replicas among 7`);
});
