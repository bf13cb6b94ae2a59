/**
 * The swarm in the crash-fault mode (n = 2f+1, majority quorums chosen by src/core/quorum.ts): every
 * seed crashes replicas at random moments and at every point of the turn pipeline (losing what was
 * not synced), restarts them, pauses them, partitions the network (isolation, splits, the primary
 * cut off, send-only and receive-only replicas) and loses, duplicates and reorders messages; no
 * byzantine replica and no wiped disk (the mode does not claim to survive them). Every seed must show
 * zero violations of agreement, validity, at-most-once execution, the sequential model, durability
 * and liveness after healing, through the same checkers as the byzantine swarm.
 *
 * And its negative control: the same plans with every vote quorum of f instead of f+1 must be caught,
 * by the durability checker (a reply before f+1 replicas hold the COMMIT) and, with that checker
 * silenced, by agreement itself: correct replicas commit different batches at one sequence number.
 * `npm test` runs the seeds below; `npm run test:long` runs many more (test/long/swarm-crash.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSwarm } from '../../src/sim/swarm.ts';
import { describeFailures, swarmWithoutViolations } from './swarm-helpers.ts';

test('crash-mode swarm n=3 (f = 1): seeds 1..30 show no violation', () => {
  const s = swarmWithoutViolations(1, 30, { replicas: 3, faultModel: 'crash' });
  assert.equal(Object.values(s.evidence).reduce((a, b) => a + b, 0), 0, 'no replica lies, so no equivocation evidence');
  for (const kind of ['partition-isolate', 'partition-primary', 'restart']) assert.ok((s.faults[kind] ?? 0) > 0, `no ${kind}`);
  assert.equal(Object.keys(s.faults).filter((k) => k.startsWith('byzantine-') || k === 'wipe' || k === 'disk-damage').length, 0, `byzantine faults drawn: ${Object.keys(s.faults).join(', ')}`);
  process.stderr.write(`crash swarm n=3 seeds 1..30: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${s.ticks} ticks, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});

test('crash-mode swarm n=5 (f = 2): seeds 1..6 show no violation', () => {
  // (Too few seeds for swarmWithoutViolations' "every crash point happened" check; n=3 covers that.)
  const options = { replicas: 5, faultModel: 'crash' } as const;
  const s = runSwarm(1, 6, options);
  assert.equal(s.failures.length, 0, describeFailures(s, options));
  assert.ok(s.requestsCommitted > 6 * 40 && s.viewChanges > 0 && (s.faults['restart'] ?? 0) > 0, JSON.stringify(s.faults));
  process.stderr.write(`crash swarm n=5 seeds 1..6: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});

test('negative control: crash-mode quorums of f instead of f+1 are caught by the checkers', () => {
  const SEEDS = 12;
  const broken = runSwarm(1, SEEDS, { replicas: 3, faultModel: 'crash', negative: 'crash-quorum-f' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= SEEDS / 2, `only ${caught.length} of ${SEEDS} seeds caught quorums of f`);
  const checks = new Set(caught.flatMap((r) => r.violations.map((v) => v.check)));
  process.stderr.write(`crash quorum f: caught in ${caught.length}/${SEEDS} seeds by ${[...checks].join(', ')}\n`);
  // Not only the durability rule: with it silenced, quorums of f let two correct replicas commit or
  // execute different batches at one sequence number (or sign different results for one request).
  const silenced = runSwarm(1, 20, { replicas: 3, faultModel: 'crash', negative: 'crash-quorum-f', ignoreChecks: ['reply-before-decided'] });
  const diverged = silenced.failures.filter((r) => r.violations.some((v) => v.check === 'agreement' || v.check === 'reply-conflict'));
  assert.ok(diverged.length >= 3, `only ${diverged.length} of 20 seeds diverged: ${describeFailures(silenced, { replicas: 3, faultModel: 'crash' })}`);
  process.stderr.write(`crash quorum f, durability check silenced: agreement broken in ${diverged.length}/20 seeds\n`);
  // n = 5: quorums of 2 of 5.
  const five = runSwarm(1, 3, { replicas: 5, faultModel: 'crash', negative: 'crash-quorum-f' });
  assert.ok(five.failures.some((r) => r.kind === 'correctness' || r.kind === 'crash'), 'quorums of 2 of 5 not caught');
});

test('the crash mode refuses what it is not for: a byzantine negative control, or a 3f+1 count', () => {
  assert.throws(() => runSwarm(1, 1, { replicas: 3, faultModel: 'crash', negative: 'too-many-byzantine' }), /for the byzantine fault model/);
  assert.throws(() => runSwarm(1, 1, { replicas: 4, faultModel: 'crash' }), /2f\+1/);
  assert.throws(() => runSwarm(1, 1, { replicas: 4, negative: 'crash-quorum-f' }), /for the crash fault model/);
});
