/**
 * `pbft sim`: the deterministic simulator from the command line.
 *   pbft sim --seed N [--replicas 4]        replays one seed and prints what happened
 *   pbft sim --seed N --trace               the same, with its timeline (src/sim/trace.ts)
 *   pbft sim --seeds 1000 [--replicas 4]    runs a swarm and prints a summary
 * On a failure it prints the seed, the kind (crash, liveness, correctness) and the command that
 * replays it, and exits non-zero.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { FaultModel } from '../core/cluster.ts';
import { faultsOf, replicasFor } from '../core/quorum.ts';
import { NEGATIVE_CONTROLS, runSeed, runSwarm, type SeedReport, type SwarmOptions } from '../sim/swarm.ts';
import { traceSeed } from '../sim/trace.ts';

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

function replicaCount(value: string): number {
  const n = Number(value);
  // 3f+1, or 2f+1 with --fault-model crash (checked against the model in the action).
  if (!/^\d+$/.test(value) || n < 3) throw new InvalidArgumentError('must be 3f+1 with f >= 1 (4, 7, 10, ...), or 2f+1 (3, 5, 7, ...) with --fault-model crash');
  return n;
}

function describeFailure(r: SeedReport, replicas: number, negative: string | undefined, write: (line: string) => void, model: FaultModel = 'byzantine'): void {
  write(`FAILED seed ${r.seed}: ${r.kind} (${r.violations.length} violation${r.violations.length === 1 ? '' : 's'}); byzantine: ${r.byzantine.join(', ') || 'none'}`);
  for (const v of r.violations.slice(0, 5)) write(`  [${v.kind}] ${v.check} at tick ${v.tick}: ${v.detail.split('\n')[0]}`);
  write(`  replay: npx pbft sim --seed ${r.seed} --replicas ${replicas}${model === 'crash' ? ' --fault-model crash' : ''}${negative ? ` --negative ${negative}` : ''}`);
}

function formatFaults(faults: Record<string, number>): string {
  return Object.entries(faults)
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

export function addSimCommand(program: Command): Command {
  return program
    .command('sim')
    .description('run the deterministic simulator against the production core: replay one seed, or a swarm of seeds')
    .option('--seed <n>', 'replay one seed', positiveInt('--seed'))
    .option('--seeds <count>', 'run a swarm of this many seeds', positiveInt('--seeds'))
    .option('--first <n>', 'first seed of the swarm', positiveInt('--first'), 1)
    .option('--replicas <n>', 'replicas (3f+1; crash: 2f+1)', replicaCount)
    .addOption(new Option('--fault-model <model>', 'byzantine (default; 4 replicas) or crash (n = 2f+1, default 3 replicas: crashes, restarts, pauses and partitions, no byzantine replica or wiped disk)').choices(['byzantine', 'crash']).default('byzantine'))
    .option('--negative <control>', `run a deliberately broken build: ${NEGATIVE_CONTROLS.join(' | ')}`)
    .option('--json', 'print the summary as JSON')
    .option('--no-checkpoint-slices', 'no seed computes its checkpoints over several turns (the replica option checkpointSliceBytes; about half the seeds do by default): replays a seed as it ran before they existed, as test/sim/regression-seeds.test.ts does')
    .option('--trace', 'with --seed: print the timeline of the run (faults, view changes, checkpoints, state transfers) and every replica\'s end state')
    .addHelpText(
      'after',
      `
Each seed draws its own faults (loss, duplication, reordering, partitions, crashes at every point
of the turn pipeline: crash, crash-before-write, crash-during-write, crash-after-write-before-send;
slow disks, a wiped disk, a damaged disk, pauses (like SIGSTOP, then a burst of the missed ticks), up
to f byzantine replicas and a byzantine client; in about half the seeds the replicas compute their
checkpoints over several turns, a partition or a few per turn, while execution goes on), then
heals the network and checks that every request is answered. Checkers, run as things happen:
agreement, durability (nothing leaves a replica before what it depends on is on its disk), no
equivocation, one result per request, accepted results equal executed ones, stable checkpoints
agree, logs within their window, validity, at-most-once execution, no regression, results equal to
a sequential key-value model, liveness.

Negative controls (deliberately broken builds the checkers must catch):
  commit-quorum        a commit quorum of 2f
  prepare-quorum       prepared with 2f-1 PREPAREs
  recovery-quorum      recovery deciding "prepared" by another threshold than the normal case
  too-many-byzantine   f+1 colluding replicas
  reply-before-write   replies sent before the COMMIT they depend on is durable (the old shell)
  ignore-lost-data     a replica behind its horizon record votes as if nothing was lost
  crash-quorum-f       (--fault-model crash) every vote quorum f instead of f+1

Examples:
  npx pbft sim --seeds 1000
  npx pbft sim --seeds 200 --replicas 7
  npx pbft sim --seed 42
  npx pbft sim --seed 279 --trace
  npx pbft sim --seeds 2000 --negative reply-before-write
  npx pbft sim --seeds 200 --fault-model crash --replicas 3`,
    )
    .action((opts: { seed?: number; seeds?: number; first: number; replicas?: number; faultModel: FaultModel; negative?: string; json?: boolean; trace?: boolean; checkpointSlices: boolean }) => {
      const write = (line: string): void => void process.stdout.write(line + '\n');
      const model = opts.faultModel;
      const replicas = opts.replicas ?? (model === 'crash' ? 3 : 4);
      if (replicasFor(faultsOf(replicas, model), model) !== replicas) {
        process.stderr.write(`sim: --replicas must be ${model === 'crash' ? '2f+1 (3, 5, 7, ...) with --fault-model crash' : '3f+1 (4, 7, 10, ...)'}; got ${replicas}\n`);
        process.exitCode = 1;
        return;
      }
      if (opts.seed === undefined && opts.seeds === undefined) {
        process.stderr.write('sim: give --seed N (replay one) or --seeds COUNT (run a swarm)\n');
        process.exitCode = 1;
        return;
      }
      if (opts.negative !== undefined && !(NEGATIVE_CONTROLS as readonly string[]).includes(opts.negative)) {
        process.stderr.write(`sim: --negative must be one of ${NEGATIVE_CONTROLS.join(', ')}; got '${opts.negative}'\n`);
        process.exitCode = 1;
        return;
      }
      const swarmOptions: SwarmOptions = { replicas, faultModel: model, negative: opts.negative as SwarmOptions['negative'], checkpointSlices: opts.checkpointSlices };
      if (opts.seed !== undefined && opts.trace) {
        const t = traceSeed(opts.seed, swarmOptions);
        write(t.text);
        process.exitCode = t.report.kind ? 1 : 0;
        return;
      }
      if (opts.seed !== undefined) {
        const r = runSeed(opts.seed, swarmOptions);
        if (opts.json) write(JSON.stringify(r));
        else {
          write(`seed ${r.seed}: ${r.replicas} replicas, ${r.ticks} ticks, ${r.requestsCommitted} requests committed, ${r.viewChanges} view changes, ${r.elapsedMs} ms`);
          write(`byzantine: ${r.byzantine.join(', ') || 'none'}`);
          write(`faults: ${formatFaults(r.faults)}`);
          write(`equivocation evidence: ${formatFaults(r.evidence.byKind)}${r.evidence.signers.length > 0 ? ` (against replica${r.evidence.signers.length > 1 ? 's' : ''} ${r.evidence.signers.join(', ')})` : ''}`);
          if (r.kind) describeFailure(r, replicas, opts.negative, write, model);
          else write('no violations');
        }
        process.exitCode = r.kind ? 1 : 0;
        return;
      }
      const count = opts.seeds!;
      let done = 0;
      const progress = process.stderr.isTTY;
      const summary = runSwarm(opts.first, count, swarmOptions, (r) => {
        done++;
        if (r.kind && !opts.json) describeFailure(r, replicas, opts.negative, write, model);
        if (progress && (done % 10 === 0 || done === count)) process.stderr.write(`\r${done}/${count} seeds`);
      });
      if (progress) process.stderr.write('\n');
      const violations = summary.failures.reduce((sum, r) => sum + r.violations.length, 0);
      if (opts.json) {
        write(JSON.stringify({ ...summary, violations, failures: summary.failures.map((r) => ({ seed: r.seed, kind: r.kind, violations: r.violations })) }));
      } else {
        write(`seeds: ${summary.seeds} (first ${opts.first}), replicas: ${summary.replicas} (${model} faults), elapsed: ${(summary.elapsedMs / 1000).toFixed(1)} s`);
        write(`simulated ticks: ${summary.ticks}`);
        write(`requests committed: ${summary.requestsCommitted}`);
        write(`view changes: ${summary.viewChanges}`);
        if (summary.faults.pause) write(`pauses: ${summary.faults.pause}; longest time a resumed replica was out of the others' view: ${summary.pauseRecoveryTicksMax} ticks (${summary.pauseRecoveryTicksMax * 10} ms)`);
        write(`faults injected: ${formatFaults(summary.faults)}`);
        write(`equivocation evidence (correct replicas and clients): ${formatFaults(summary.evidence)} in ${summary.seedsWithEvidence} seed${summary.seedsWithEvidence === 1 ? '' : 's'} (each piece must verify and name a byzantine or wiped replica)`);
        write(`violations: ${violations} (${summary.failures.length} failing seed${summary.failures.length === 1 ? '' : 's'}${summary.failures.length ? ': ' + summary.failures.map((r) => `${r.seed} ${r.kind}`).join(', ') : ''})`);
      }
      process.exitCode = summary.failures.length > 0 ? 1 : 0;
    });
}
