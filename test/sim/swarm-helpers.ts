/** Shared assertions for the swarm tests: on failure, name every failing seed and how to replay it. */
import assert from 'node:assert/strict';
import { runSwarm, type SwarmOptions, type SwarmSummary } from '../../src/sim/swarm.ts';

export function describeFailures(summary: SwarmSummary, options: SwarmOptions): string {
  return summary.failures
    .map((r) => {
      const first = r.violations[0];
      const replay = `npx pbft sim --seed ${r.seed} --replicas ${options.replicas}${options.faultModel === 'crash' ? ' --fault-model crash' : ''}${options.negative ? ` --negative ${options.negative}` : ''}`;
      return `seed ${r.seed} (${r.kind}): ${first ? `${first.check}: ${first.detail.split('\n')[0]}` : ''}\n  replay: ${replay}`;
    })
    .join('\n');
}

/** Runs seeds [first, first+count) and asserts zero violations; returns the summary. */
export function swarmWithoutViolations(first: number, count: number, options: SwarmOptions): SwarmSummary {
  const summary = runSwarm(first, count, options);
  assert.equal(summary.seeds, count);
  assert.equal(summary.failures.length, 0, `violations in ${summary.failures.length} seeds:\n${describeFailures(summary, options)}`);
  // The swarm must actually have exercised the protocol.
  assert.ok(summary.requestsCommitted > count * 40, `only ${summary.requestsCommitted} requests committed`);
  assert.ok(summary.viewChanges > 0, 'no view change happened');
  // Replicas crashed at every point of the turn pipeline.
  for (const kind of ['crash-before-write', 'crash-during-write', 'crash-after-write-before-send']) {
    assert.ok((summary.faults[kind] ?? 0) > 0, `no ${kind} in ${count} seeds`);
  }
  return summary;
}
