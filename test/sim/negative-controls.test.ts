/**
 * Negative controls: a checker that cannot catch a broken build proves nothing. Broken builds (a
 * commit quorum of 2f, a prepare quorum of 2f-1, recovery deciding "prepared" with its own threshold,
 * f+1 byzantine replicas) run on the swarm's seeds; the checkers must catch each (a correctness
 * violation, or a correct replica crashing on its "committed with two digests" invariant). The
 * correct build passes the same plans (the swarm tests and test/sim/durability.test.ts).
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

test('a prepare quorum of 2f-1 (instead of 2f matching PREPAREs) is caught: two correct replicas prepare different digests', () => {
  const broken = runSwarm(1, SEEDS, { replicas: 4, negative: 'prepare-quorum' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= 10, `only ${caught.length} of ${SEEDS} seeds caught the broken prepare quorum`);
  const checks = new Set(caught.flatMap((r) => r.violations.map((v) => v.check)));
  assert.ok(checks.has('prepared-conflict'), `caught by ${[...checks].join(', ')}`);
  process.stderr.write(`prepare quorum 2f-1: caught in ${caught.length}/${SEEDS} seeds by ${[...checks].join(', ')}\n`);
});

test('recovery that decides "prepared" with another threshold than the normal case is caught', () => {
  const broken = runSwarm(1, SEEDS, { replicas: 4, negative: 'recovery-quorum' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= 10, `only ${caught.length} of ${SEEDS} seeds caught recovery's broken use of the quorum`);
  process.stderr.write(`recovery quorum: caught in ${caught.length}/${SEEDS} seeds\n`);
  // The same faults (an equivocating primary, frequent short crashes) with the correct build: no violation.
  const fixed = runSwarm(1, SEEDS, { replicas: 4, negative: 'recovery-quorum', planOnly: true });
  assert.deepEqual(fixed.failures.map((r) => `${r.seed} ${r.kind}`), []);
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
