/**
 * `npm run nemesis`: the running service under faults, checked for linearizability (Jepsen-style).
 *
 * Starts n real replica processes (each in its own network namespace on a bridge this runner makes;
 * without root, on loopback addresses with partitions and netem disabled), drives concurrent SDK
 * clients doing put / get / cas / delete with unique values, injects faults on a seeded schedule,
 * then heals everything, checks the history against a sequential key-value model (per key, with
 * operations of unknown outcome allowed to take effect at any time after their invocation or never)
 * and compares every replica's state digest at a common checkpoint. Writes the history and the
 * report to --out. Exit status 0 only with no anomaly, agreeing digests and no replica crash.
 *
 * Faults (never more than f replicas at once, unless --beyond-f):
 *   kill       kill -9 (the primary too), restart after 1-8 s
 *   pause      SIGSTOP for 1-15 s, then SIGCONT
 *   wipe       kill -9, delete the data directory, restart empty after 1-3 s
 *   partition  isolate one replica, isolate the primary, split in two, or one-way (a replica's
 *              packets to the others dropped, theirs to it delivered), for 2-10 s
 *   netem      delay 20-200 ms with jitter, loss 2-15%, duplication 0-10% on what f replicas send
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PbftClient } from '../client/client.ts';
import { checkLinearizable, formatViolation, type CheckResult } from '../check/linearizability.ts';
import { CLUSTER_FILE, keyFileName } from '../crypto/keyring.ts';
import type { NodeStatus } from '../node/replica-node.ts';
import { Prng } from '../sim/prng.ts';
import { freePorts } from '../transport/free-ports.ts';
import { describeNetem, Namespaces, netemKind, probeNamespaces, type NetemSpec } from './netns.ts';
import { ReplicaSet } from './replicas.ts';
import { Workload } from './workload.ts';
import { formatReport, type FaultRecord, type Report } from './report.ts';

export const NEMESES = ['kill', 'pause', 'wipe', 'partition', 'netem'] as const;
export type Nemesis = (typeof NEMESES)[number];

export interface NemesisOptions {
  replicas: number;
  time: number;
  seed: number;
  nemesis: Nemesis[];
  clients: number;
  keys: number;
  /** Mean seconds between faults. */
  interval: number;
  out: string;
  beyondF: boolean;
  loopback: boolean;
  quiet: boolean;
  /** One replica (the last) signs a forged result in every reply: the SDK must filter it out. */
  liar?: boolean;
  /** A deliberately broken client that only the checker can catch: 'first-reply' (implies liar). */
  negative?: 'first-reply';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runNemesis(o: NemesisOptions, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<Report> {
  const f = (o.replicas - 1) / 3;
  if (!Number.isInteger(f) || f < 1) throw new Error(`--replicas must be 3f+1 with f >= 1; got ${o.replicas}`);
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const work = join(tmpdir(), `pbft-nemesis-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(work, { recursive: true });
  const prng = new Prng(o.seed);
  // The run's clock (fault records, history, availability, --time) starts with the workload, below:
  // starting and connecting the replicas, which took up to 27 s on a loaded machine, is not part of it.
  let t0 = performance.now();
  const now = (): number => performance.now() - t0;
  const notes: string[] = [];

  // --- network ------------------------------------------------------------------------------
  let spaces: Namespaces | undefined;
  const why = o.loopback ? 'asked for loopback (--loopback)' : probeNamespaces();
  let nemeses = [...o.nemesis];
  let urls: string[];
  let qdisc: 'netem' | 'tbf' | undefined;
  if (why === undefined) {
    spaces = new Namespaces(o.replicas);
    if (nemeses.includes('netem')) {
      qdisc = netemKind();
      if (qdisc === 'tbf') notes.push('tc netem is missing in this kernel: the netem fault is a slow link (tc tbf rate limiting: queueing delay and drops)');
      if (qdisc === undefined) {
        nemeses = nemeses.filter((n) => n !== 'netem');
        notes.push('neither tc netem nor tbf works here: netem disabled');
      }
      if (qdisc !== 'netem') log(`nemesis: ${notes[notes.length - 1]}`);
    }
    urls = Array.from({ length: o.replicas }, (_, i) => `ws://${spaces!.address(i)}:7001`);
  } else {
    const [port] = await freePorts(1);
    urls = Array.from({ length: o.replicas }, (_, i) => `ws://127.0.0.${2 + i}:${port}`);
    const dropped = nemeses.filter((n) => n === 'partition' || n === 'netem');
    nemeses = nemeses.filter((n) => n !== 'partition' && n !== 'netem');
    notes.push(`network namespaces unavailable (${why}): replicas on loopback addresses${dropped.length ? `; ${dropped.join(' and ')} disabled` : ''}`);
    log(`nemesis: ${notes[notes.length - 1]}`);
  }
  let replicas: ReplicaSet | undefined;
  const cleanup = (): void => {
    replicas?.killAllNow();
    spaces?.destroy();
  };
  const onSignal = (): void => {
    log('nemesis: interrupted; cleaning up');
    cleanup();
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', cleanup);

  const faults: FaultRecord[] = [];
  const viewSamples: Array<{ t: number; views: (string | undefined)[] }> = [];
  let workload: Workload | undefined;
  let finalDigests: Report['digests'] = [];
  let crashed: number[] = [];
  let result: CheckResult = { ok: true };
  try {
    spaces?.create();
    const liar = o.liar === true || o.negative === 'first-reply' ? o.replicas - 1 : undefined;
    replicas = new ReplicaSet(work, urls, o.clients + 1, spaces ? (i) => spaces!.exec(i) : () => [], liar);
    if (liar !== undefined) notes.push(`replica ${liar} lies: it signs a forged result in every reply`);
    if (o.negative === 'first-reply') notes.push('negative control: the SDK accepts the first reply instead of f+1 matching ones');
    const set = replicas;
    for (let i = 0; i < o.replicas; i++) set.start(i);
    await waitFor(async () => (await set.statuses()).every((s) => s !== undefined && s.transport.replicasConnected.length === o.replicas - 1), 60_000, 'every replica to start and connect');
    log(`nemesis: ${o.replicas} replicas up (${spaces ? `namespaces ${spaces.names.join(', ')}` : 'loopback'}); ${o.clients} clients; faults: ${nemeses.join(', ') || 'none'}; seed ${o.seed}`);

    t0 = performance.now();
    workload = new Workload(set.keysDir, { clients: o.clients, keys: o.keys, opTimeoutMs: 10_000, acceptFirstReply: o.negative === 'first-reply' }, prng.fork(), now);
    await workload.start();

    // --- monitor: views every 250 ms ------------------------------------------------------
    let monitoring = true;
    let statuses: (NodeStatus | undefined)[] = [];
    const monitor = (async () => {
      while (monitoring) {
        statuses = await set.statuses(500);
        viewSamples.push({ t: now(), views: statuses.map((s) => (s === undefined ? undefined : s.viewChanging ? `${s.view}*` : `${s.view}`)) });
        await sleep(250);
      }
    })();
    // Progress: one line rewritten every second on a terminal, a line every 10 s otherwise.
    const tty = process.stderr.isTTY === true;
    let ticks = 0;
    const progress = setInterval(() => {
      if (o.quiet || (!tty && ++ticks % 10 !== 0)) return;
      const w = workload!;
      const views = statuses.map((s, i) => `${i}:${set.state[i] !== 'running' ? set.state[i] : s ? `v${s.view}${s.viewChanging ? '*' : ''}` : '?'}`).join(' ');
      const current = faults.length > 0 && faults[faults.length - 1]!.end === undefined ? faults[faults.length - 1]!.description : '-';
      const line = `  t=${(now() / 1000).toFixed(0)}/${o.time}s ops ok=${w.outcomes.ok} fail=${w.outcomes.fail} unknown=${w.outcomes.unknown} | ${views} | fault: ${current}`;
      process.stderr.write(tty ? `\r${line.slice(0, (process.stderr.columns ?? 120) - 1).padEnd((process.stderr.columns ?? 120) - 1)}` : `${line}\n`);
    }, 1_000);

    // --- faults -------------------------------------------------------------------------------
    const primary = (): number => {
      const counts = new Map<number, number>();
      for (const s of statuses) if (s) counts.set(s.view, (counts.get(s.view) ?? 0) + 1);
      let view = 0;
      let best = -1;
      for (const [v, c] of counts) if (c > best) [view, best] = [v, c];
      return view % o.replicas;
    };
    const pickTargets = (count: number, includePrimary: boolean): number[] => {
      const all = Array.from({ length: o.replicas }, (_, i) => i);
      const chosen = new Set<number>();
      if (includePrimary) chosen.add(primary());
      while (chosen.size < count) chosen.add(prng.pick(all));
      return [...chosen];
    };
    const maxFaulty = o.beyondF ? f + 1 : f;
    const end = o.time * 1_000;
    while (now() < end - 2_000 && nemeses.length > 0) {
      await sleep(prng.range(Math.round(o.interval * 500), Math.round(o.interval * 1_500)));
      if (now() >= end - 2_000) break;
      const kind = prng.pick(nemeses);
      const count = kind === 'wipe' ? 1 : prng.range(1, maxFaulty);
      const targets = pickTargets(count, prng.chance(0.3));
      const record: FaultRecord = { kind, targets, description: '', start: now() };
      faults.push(record);
      try {
        switch (kind) {
          case 'kill': {
            record.description = `kill -9 ${targets.join(',')}`;
            for (const t of targets) await set.kill(t);
            await sleep(prng.range(1_000, 8_000));
            for (const t of targets) set.start(t);
            break;
          }
          case 'pause': {
            const ms = prng.range(1_000, 15_000);
            record.description = `pause ${targets.join(',')} for ${(ms / 1000).toFixed(1)} s`;
            for (const t of targets) set.pause(t);
            await sleep(ms);
            for (const t of targets) set.resume(t);
            break;
          }
          case 'wipe': {
            record.description = `wipe ${targets.join(',')}`;
            for (const t of targets) await set.wipe(t);
            await sleep(prng.range(1_000, 3_000));
            for (const t of targets) set.start(t);
            break;
          }
          case 'partition': {
            const sp = spaces!;
            const variant = prng.pick(['isolate', 'isolate-primary', 'split', 'one-way'] as const);
            const ms = prng.range(2_000, 10_000);
            const others = (i: number): number[] => Array.from({ length: o.replicas }, (_, j) => j).filter((j) => j !== i);
            if (variant === 'split') {
              const shuffled = prng.shuffle(Array.from({ length: o.replicas }, (_, i) => i));
              const a = shuffled.slice(0, Math.floor(o.replicas / 2));
              const b = shuffled.slice(Math.floor(o.replicas / 2));
              for (const x of a) for (const y of b) {
                sp.cut(x, y);
                sp.cut(y, x);
              }
              record.targets = a;
              record.description = `partition ${a.join(',')} | ${b.join(',')} for ${(ms / 1000).toFixed(1)} s`;
            } else {
              const t = variant === 'isolate-primary' ? primary() : targets[0]!;
              record.targets = [t];
              for (const j of others(t)) {
                sp.cut(t, j);
                if (variant !== 'one-way') sp.cut(j, t);
              }
              if (variant !== 'one-way') sp.cut(t, 'clients');
              record.description = `${variant === 'one-way' ? `one-way: ${t}'s packets to the others dropped` : `isolate ${t}${variant === 'isolate-primary' ? ' (primary)' : ''}`} for ${(ms / 1000).toFixed(1)} s`;
            }
            await sleep(ms);
            sp.heal();
            break;
          }
          case 'netem': {
            const sp = spaces!;
            const spec: NetemSpec =
              qdisc === 'netem'
                ? { delayMs: prng.range(20, 200), jitterMs: prng.range(0, 50), lossPercent: prng.range(2, 15), duplicatePercent: prng.range(0, 10) }
                : { rateKbit: prng.pick([64, 128, 256, 512]), latencyMs: prng.range(50, 400) };
            const ms = prng.range(5_000, 15_000);
            for (const t of targets) sp.netem(t, spec);
            record.description = `netem on ${targets.join(',')} (${describeNetem(spec)}) for ${(ms / 1000).toFixed(1)} s`;
            await sleep(ms);
            sp.clearNetem();
            break;
          }
        }
      } catch (err) {
        // A fault the machine cannot inject (e.g. a qdisc the kernel lacks): say so, undo what it did, go on without it.
        const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
        notes.push(`the ${kind} fault failed (${message}); it is disabled for the rest of the run`);
        log(`nemesis: ${notes[notes.length - 1]}`);
        nemeses = nemeses.filter((x) => x !== kind);
        record.description = `${kind} (failed: ${message})`;
        spaces?.heal();
        spaces?.clearNetem();
        for (let i = 0; i < o.replicas; i++) {
          if (set.state[i] === 'paused') set.resume(i);
          if (set.state[i] === 'killed') set.start(i);
        }
      }
      record.end = now();
      if (!o.quiet && tty) process.stderr.write('\n');
      log(`  ${(record.start / 1000).toFixed(1)}s ${record.description}`);
    }
    const remaining = end - now();
    if (remaining > 0) await sleep(remaining);
    clearInterval(progress);
    if (!o.quiet && tty) process.stderr.write('\n');

    // --- heal everything, stop the clients, let the replicas converge ----------------------------
    spaces?.heal();
    spaces?.clearNetem();
    for (let i = 0; i < o.replicas; i++) {
      if (set.state[i] === 'paused') set.resume(i);
      if (set.state[i] === 'killed') set.start(i);
    }
    crashed = Array.from({ length: o.replicas }, (_, i) => i).filter((i) => set.exitedOnItsOwn(i));
    await workload.stop();
    monitoring = false;
    await monitor;

    // A common checkpoint: write until every replica computed its own checkpoint at the same seq.
    finalDigests = await commonCheckpoint(set, o.clients, log);
    result = checkLinearizable(workload.history.ops());
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const left = spaces?.destroy() ?? [];
    await replicas?.destroy();
    if (left.length > 0) notes.push(`could not remove: ${left.join(', ')}`);
    process.off('exit', cleanup);
  }

  const ops = workload!.history.ops();
  writeFileSync(join(out, 'history.jsonl'), ops.map((op) => JSON.stringify(op)).join('\n') + '\n');
  const report: Report = {
    seed: o.seed,
    replicas: o.replicas,
    seconds: o.time,
    network: spaces ? 'namespaces' : 'loopback',
    nemeses,
    notes,
    outcomes: { ...workload!.outcomes },
    completions: workload!.completions,
    faults: faults.map((fr) => ({ ...fr, ...afterFault(fr, faults, viewSamples, workload!.completions) })),
    anomalies: result.ok ? 0 : 1,
    violation: result.ok ? undefined : formatViolation(result),
    digests: finalDigests,
    crashed,
    command: `npm run nemesis -- --replicas ${o.replicas} --time ${o.time} --seed ${o.seed} --nemesis ${o.nemesis.join(',') || 'none'} --clients ${o.clients} --keys ${o.keys} --interval ${o.interval}${o.beyondF ? ' --beyond-f' : ''}${o.liar ? ' --liar' : ''}${o.negative ? ` --negative ${o.negative}` : ''}`,
  };
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const textReport = formatReport(report);
  writeFileSync(join(out, 'report.txt'), textReport);
  log(textReport);
  rmSync(work, { recursive: true, force: true });
  return report;
}

async function waitFor(probe: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await probe()) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Writes (a fresh client) until every replica's own last checkpoint is at one seq; their digests. */
async function commonCheckpoint(set: ReplicaSet, clientId: number, log: (l: string) => void): Promise<Report['digests']> {
  const client = await PbftClient.connect({ cluster: join(set.keysDir, CLUSTER_FILE), key: join(set.keysDir, keyFileName('client', clientId)), timeoutMs: 10_000 });
  try {
    const deadline = performance.now() + 120_000;
    let i = 0;
    while (performance.now() < deadline) {
      const all = await set.statuses(2_000);
      if (all.every((s) => s !== undefined)) {
        const seqs = all.map((s) => s!.lastCheckpoint.seq);
        const target = Math.max(...seqs);
        if (target > 0 && seqs.every((q) => q === target)) return all.map((s, id) => ({ id, seq: s!.lastCheckpoint.seq, digest: s!.lastCheckpoint.digest, lastExecuted: s!.lastExecuted }));
      }
      await client.put(`settle-${i % 8}`, `v${i}`).catch(() => undefined);
      i++;
    }
    log('nemesis: the replicas did not reach a common checkpoint within 120 s');
    return (await set.statuses(2_000)).map((s, id) => ({ id, seq: s?.lastCheckpoint.seq ?? -1, digest: s?.lastCheckpoint.digest ?? '(no answer)', lastExecuted: s?.lastExecuted ?? -1 }));
  } finally {
    await client.close().catch(() => undefined);
  }
}

/**
 * After a fault heals: how long until an operation completes again, and how long some replica stays
 * out of the view most replicas are in (sampled every 250 ms), until the next fault starts.
 */
function afterFault(
  fr: FaultRecord,
  all: FaultRecord[],
  samples: Array<{ t: number; views: (string | undefined)[] }>,
  completions: number[],
): { recoveryMs?: number; outOfViewMs?: number } {
  if (fr.end === undefined) return {};
  const next = all[all.indexOf(fr) + 1]?.start ?? Infinity;
  const firstOk = completions.find((t) => t >= fr.end!);
  const recoveryMs = firstOk !== undefined && firstOk < next ? Math.round(firstOk - fr.end) : undefined;
  let outOfViewMs = 0;
  const window = samples.filter((s) => s.t >= fr.end! && s.t < next);
  if (window.length > 0) {
    const n = window[0]!.views.length;
    for (let i = 0; i < n; i++) {
      let back: number | undefined;
      for (const s of window) {
        const counts = new Map<string, number>();
        for (const v of s.views) if (v !== undefined && !v.endsWith('*')) counts.set(v, (counts.get(v) ?? 0) + 1);
        let majority: string | undefined;
        let best = 0;
        for (const [v, c] of counts) if (c > best) [majority, best] = [v, c];
        if (majority === undefined || s.views[i] === majority) {
          back = s.t;
          break;
        }
      }
      const out = (back ?? window[window.length - 1]!.t) - fr.end;
      outOfViewMs = Math.max(outOfViewMs, Math.round(out));
    }
  }
  return { ...(recoveryMs !== undefined ? { recoveryMs } : {}), outOfViewMs };
}

export function nemesisCommand(): Command {
  return new Command('nemesis')
    .description('run real replica processes under faults (kill, pause, wipe, partition, netem) with concurrent clients, and check the history for linearizability')
    .addOption(new Option('--replicas <n>', 'replicas (3f+1)').default(4).argParser(positiveInt))
    .addOption(new Option('--time <s>', 'seconds of faults and load, counted from when every replica is up and connected').default(60).argParser(positiveInt))
    .addOption(new Option('--seed <n>', 'seed of the fault schedule and the workload').default(1).argParser(nonNegativeInt))
    .addOption(new Option('--nemesis <list>', `faults, comma-separated: ${NEMESES.join(',')}, or none`).default([...NEMESES]).argParser(nemesisList))
    .addOption(new Option('--clients <n>', 'concurrent SDK clients').default(8).argParser(positiveInt))
    .addOption(new Option('--keys <n>', 'keys the clients share').default(5).argParser(positiveInt))
    .addOption(new Option('--interval <s>', 'mean seconds between faults').default(5).argParser(positiveInt))
    .option('--out <dir>', 'directory for history.jsonl, report.json and report.txt', join('nemesis-results', new Date().toISOString().replace(/[:.]/g, '-')))
    .option('--beyond-f', 'let a fault take f+1 replicas: the service must stop answering, never answer wrongly')
    .option('--loopback', 'no network namespaces: replicas on 127.0.0.x, partitions and netem disabled')
    .option('--liar', 'the last replica signs a forged result in every reply (the SDK must filter it: 0 anomalies)')
    .addOption(new Option('--negative <control>', 'a deliberately broken client only the checker can catch: first-reply (the SDK takes the first reply; with --liar implied)').choices(['first-reply']))
    .option('--quiet', 'no progress line')
    .addHelpText(
      'after',
      `
Needs root for network namespaces (ip netns, veth, a bridge, tc netem); without it the replicas run on
loopback addresses and partition / netem are left out (it says so). Everything it makes is removed at
the end, also on Ctrl-C. Exit status 0 only if the history is linearizable, the replicas' state
digests agree at a common checkpoint and no replica crashed on its own.

Examples:
  npm run nemesis -- --time 60 --seed 1
  npm run nemesis -- --replicas 7 --time 600 --nemesis kill,pause,partition --out results/n7
  npm run nemesis -- --beyond-f --time 60`,
    );
}

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`expected a positive integer, got "${v}"`);
  return Number(v);
}

function nonNegativeInt(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`expected a non-negative integer, got "${v}"`);
  return Number(v);
}

function nemesisList(v: string): Nemesis[] {
  if (v.trim() === 'none') return [];
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of list) if (!(NEMESES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown nemesis "${n}" (known: ${NEMESES.join(', ')}, none)`);
  return list as Nemesis[];
}

/** The `npm run nemesis` entry point. */
export async function main(argv: readonly string[]): Promise<number> {
  const cmd = nemesisCommand();
  cmd.exitOverride();
  try {
    cmd.parse(argv, { from: 'node' });
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === 'commander.helpDisplayed' || code === 'commander.help' ? 0 : 2;
  }
  const flags = cmd.opts<{ replicas: number; time: number; seed: number; nemesis: Nemesis[]; clients: number; keys: number; interval: number; out: string; beyondF?: boolean; loopback?: boolean; quiet?: boolean; liar?: boolean; negative?: 'first-reply' }>();
  try {
    const report = await runNemesis({ ...flags, beyondF: flags.beyondF === true, loopback: flags.loopback === true, quiet: flags.quiet === true, liar: flags.liar === true });
    const digestsAgree = new Set(report.digests.map((d) => `${d.seq}:${d.digest}`)).size === 1;
    return report.anomalies === 0 && digestsAgree && report.crashed.length === 0 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`nemesis: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
