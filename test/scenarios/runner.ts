/**
 * Scenario scripts: PBFT runs written as datadriven files (test/scenarios/testdata/*.txt), in the style
 * of etcd-io/raft's testdata. Each directive is a step and the output it must print:
 *
 *     # Comments explain the rule and the paper section.
 *     cluster f=1 checkpoint=4 window=8
 *     ----
 *     4 replicas (f=1), 4 clients; checkpoint every 4, window 8, view-change timeout 10 ticks
 *
 *     request c0 put a 1
 *     ----
 *     c0->0 request c0:1 put a 1
 *
 *     deliver
 *     ----
 *     c0->0 request c0:1 put a 1
 *       0->1,2,3 preprepare v=0 s=1 <c0:1> [put a 1]
 *
 * Run: `node --import tsx --test test/scenarios/*.test.ts` (they also run in `npm test`). A script
 * whose output differs fails with a unified diff, expected against actual. To accept the new output,
 * rewrite the golden files:
 *
 *     UPDATE_GOLDEN=1 node --import tsx --test test/scenarios/scenarios.test.ts
 *     node --import tsx test/scenarios/runner.ts --rewrite [file.txt ...]
 *
 * and read the git diff before committing it.
 *
 * The world (test/scenarios/world.ts): n real Replica cores behind the production turn pipeline over
 * simulated disks, a network that holds every message until a step delivers or drops it, and clients
 * that accept a result on f+1 matching replies. Replicas are 0..n-1, clients c0, c1, ...; a request
 * is named c<client>:<timestamp>, a batch digest by its requests (<c0:1>, null for the null request),
 * any other digest by 8 hex digits.
 *
 * Steps (a filter is any of from= to= type= v= s=, each taking a list: to=1,2 type=prepare,commit):
 *
 *   cluster [f=1] [clients=4] [checkpoint=4] [window=8] [vc-timeout=10] [vc-timeout-max=N]
 *           [retransmit=N] [catch-up=N] [fetch-timeout=N] [probe=N] [batch=N] [inflight=N]
 *                        first step of every script: builds the world (defaults: the paper tests'
 *                        SMALL_OPTIONS, timers that never fire unless set)
 *   request c0 put k v | get k | del k | cas k old new  [to=0|1,2|all] [ts=N]
 *                        client c0 signs a request (next timestamp) and sends it (default: to the
 *                        primary of the latest view it learned)
 *   retransmit c0 [to=...]   the client's last request again (default: to every replica)
 *   inject from=2 [to=1] preprepare|prepare|commit v=0 s=1 [batch=c0:1,c1:1] [digest=null] [signer=0] [nobatch]
 *                        a message forged by the script, signed with the key of `signer` (default: from)
 *   deliver [filter] [limit=N] [quiet|silent]
 *                        delivers the matching messages pending now, oldest first; under each, what it
 *                        caused (messages sent, events, rejections, client acceptances); `quiet` prints
 *                        only the effects that are not messages, `silent` only rejections and client
 *                        outcomes, then how many messages were delivered
 *   stabilize [filter] [limit=N] [quiet|silent]   deliver again and again until nothing matching is pending
 *   drop [filter] [limit=N]  the network loses the matching pending messages
 *   pending [filter]         lists pending messages
 *   tick [r=1,2] [n=10] [quiet]  n ticks of the listed replicas (default: all that are up); t= is the
 *                            replica's own clock; quiet: events only, and a count of the sends
 *   crash 1 [lose-unsynced]  the replica's process dies: memory is gone, the write in flight lands
 *                            (lose-unsynced: it is lost too, as in a power failure)
 *   restart 1                a new core recovers from what the disk holds
 *   disk 1 manual|auto       manual: writes stay in flight until `sync 1` (what depends on them waits)
 *   sync 1                   completes the replica's writes in flight
 *   status [r=...]           one line per replica: view, primary, executed, stable, last checkpoint,
 *                            log slots, waiting requests (and view-changing, unsynced turns)
 *   kv a b [r=...]           the value of keys at each replica
 *   seed 54 [replicas=4] [clean-stops] [checkpoint-slices]   (src/sim/trace.ts) runs a swarm seed
 *                            and prints its timeline and end state (clean stops only with clean-stops:
 *                            SwarmOptions.cleanStops; checkpoints over several turns only with
 *                            checkpoint-slices: SwarmOptions.checkpointSlices)
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDataDriven, ScriptError, unifiedDiff, type Directive } from './datadriven.ts';
import { ScriptWorld } from './world.ts';
import { traceSeed } from '../../src/sim/trace.ts';

export const TESTDATA = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata');

export function shouldRewrite(): boolean {
  return process.env.UPDATE_GOLDEN === '1' || process.argv.includes('--rewrite');
}

/** A handler bound to a fresh world: the `cluster` step builds it, every other step runs in it. */
export function scriptHandler(): (d: Directive) => string {
  let world: ScriptWorld | undefined;
  return (d) => {
    if (d.cmd === 'cluster') {
      if (world) throw new ScriptError('cluster: the world exists already (one cluster per script)');
      world = ScriptWorld.fromArgs(d.args);
      return world.describeCluster();
    }
    if (d.cmd === 'seed') {
      const seed = Number(d.args[0]?.key);
      const replicas = Number(d.args.find((a) => a.key === 'replicas')?.vals[0] ?? 4);
      if (!Number.isInteger(seed)) throw new ScriptError('seed: which seed?');
      // Seeds recorded before clean stops existed replay without them, unless the step says
      // clean-stops; the same for checkpoints computed over several turns (checkpoint-slices).
      const cleanStops = d.args.some((a) => a.key === 'clean-stops');
      const checkpointSlices = d.args.some((a) => a.key === 'checkpoint-slices');
      return traceSeed(seed, { replicas, cleanStops, checkpointSlices }).text;
    }
    if (!world) throw new ScriptError(`${d.cmd}: the first step must be 'cluster'`);
    return world.handle(d);
  };
}

export interface ScriptOutcome {
  file: string;
  ok: boolean;
  /** Empty when ok. */
  diff: string;
  /** What differs, readably: the file, the first step whose output changed, then the diff. */
  message: string;
  actual: string;
}

/** Runs a script's text; on a mismatch the message holds a unified diff (expected -> actual). */
export function runScript(text: string, name: string): ScriptOutcome {
  const r = runDataDriven(text, scriptHandler(), name);
  if (r.ok) return { file: name, ok: true, diff: '', message: '', actual: r.actual };
  const diff = unifiedDiff(r.expected, r.actual, { from: `${name} (expected)`, to: `${name} (actual)` });
  const d = r.firstMismatch!;
  const message =
    `${name}:${d.line}: output of '${d.text}' differs from the golden file\n` +
    `(rewrite the golden files with UPDATE_GOLDEN=1 if the change is intended; read the diff first)\n\n${diff}\n`;
  return { file: name, ok: false, diff, message, actual: r.actual };
}

/** Runs a golden file; rewrites it instead when asked (UPDATE_GOLDEN=1 or --rewrite). */
export function runGoldenFile(path: string, rewrite = shouldRewrite()): ScriptOutcome {
  const text = readFileSync(path, 'utf8');
  const outcome = runScript(text, relative(process.cwd(), path));
  if (rewrite && outcome.actual !== text) {
    writeFileSync(path, outcome.actual);
    return { ...outcome, ok: true, diff: '', message: '' };
  }
  return outcome;
}

export function goldenFiles(prefix?: string): string[] {
  return readdirSync(TESTDATA)
    .filter((f) => f.endsWith('.txt') && (prefix === undefined || f.startsWith(prefix)))
    .sort()
    .map((f) => join(TESTDATA, f));
}

// `node --import tsx test/scenarios/runner.ts [--rewrite] [file ...]`
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  let failed = 0;
  for (const f of files.length > 0 ? files : goldenFiles()) {
    const o = runGoldenFile(f);
    if (!o.ok) {
      failed++;
      process.stdout.write(o.message + '\n');
    }
  }
  process.exit(failed > 0 ? 1 : 0);
}
