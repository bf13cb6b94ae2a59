/**
 * Top functions by self time of V8 CPU profiles (node --cpu-prof), e.g. from `npm run bench -- --profile DIR`.
 *
 *   node --import tsx bench/profile-top.ts [--top N] [--by-file] [--whole] PATH [PATH ...]
 *
 * A PATH is a .cpuprofile file or a directory searched for them (e.g. DIR/cluster/replica-0, or
 * DIR/cluster for every process of that run, replicas and client workers together); profiles of
 * tsx's module-loader thread are skipped in directories. Several profiles are summed. Self time of a function is the time samples spent in
 * it and not in its callees; "(garbage collector)", "(program)" and "(idle)" are V8's own buckets.
 * With --by-file, self time is grouped by source file instead.
 *
 * Profiles made by `npm run bench -- --profile DIR` cover the whole life of each process (start-up,
 * module loading, warm-up); the bench writes the measured window of each run to DIR/<run>/window.json,
 * and a first PATH inside DIR/<run>/ counts only the samples in that window, with the run's completed
 * requests: the figures per request (ms of the process's main thread per request) come from there.
 * --whole counts every sample. --window FILE takes the window from FILE instead (a run measured on a
 * cluster started under another run's name: the keys part profiles its loaded cluster in DIR/keys/
 * and measures it as DIR/keys-<N>/window.json).
 *
 * --under NAME[,NAME...] prints, for each function named, the share of the busy samples whose stack
 * holds it (its inclusive time) and the functions those samples were in (their self time under it),
 * e.g. --under advanceCheckpoint for what a replica's checkpoint slices cost.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

function where(url: string): string {
  if (url === '') return '';
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (path.startsWith(REPO_ROOT)) path = relative(REPO_ROOT, path);
  return path.replace(/^node_modules\//, 'nm/');
}

function isLoaderThread(profile: Profile): boolean {
  return profile.nodes.some((n) => n.callFrame.url === 'node:internal/modules/esm/worker');
}

/** The profiles named: files as given, directories searched (module-loader threads skipped). */
export function profileFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.cpuprofile') && !isLoaderThread(JSON.parse(readFileSync(path, 'utf8')) as Profile)) out.push(path);
    }
  };
  for (const p of paths) {
    if (statSync(p).isDirectory()) walk(p);
    else out.push(p);
  }
  return out;
}

export interface TopEntry {
  name: string;
  selfMs: number;
  share: number;
}

/** The measured window of a bench run (bench.ts writes it with --profile), CLOCK_MONOTONIC microseconds. */
export interface ProfileWindow {
  run: string;
  startUs: number;
  endUs: number;
  requests: number;
}

/** window.json in `path` or the nearest directory above it (up to two levels), if any. */
export function findWindow(path: string): ProfileWindow | undefined {
  let dir = statSync(path).isDirectory() ? resolve(path) : dirname(resolve(path));
  for (let up = 0; up < 3; up++) {
    try {
      return JSON.parse(readFileSync(join(dir, 'window.json'), 'utf8')) as ProfileWindow;
    } catch {
      dir = dirname(dir);
    }
  }
  return undefined;
}

/** A sample's leaf node and the time attributed to it, for every sample of `files` in `window`. */
function forEachSample(files: string[], window: ProfileWindow | undefined, visit: (node: ProfileNode, dt: number, parentOf: Map<number, number>, byId: Map<number, ProfileNode>) => void): void {
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
    const parentOf = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
    // timeDeltas[i] is the time between sample i-1 and sample i: attribute it to sample i.
    let at = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      const node = byId.get(profile.samples[i]!);
      const dt = (profile.timeDeltas[i] ?? 0) / 1000;
      at += profile.timeDeltas[i] ?? 0;
      if (window !== undefined && (at < window.startUs || at > window.endUs)) continue;
      if (node === undefined || dt <= 0) continue;
      visit(node, dt, parentOf, byId);
    }
  }
}

function frameName(f: ProfileNode['callFrame'], byFile = false): string {
  const file = where(f.url);
  return byFile ? file || f.functionName || '(anonymous)' : `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
}

export function topSelf(files: string[], options: { byFile?: boolean; window?: ProfileWindow } = {}): { totalMs: number; entries: TopEntry[] } {
  const self = new Map<string, number>();
  let totalMs = 0;
  forEachSample(files, options.window, (node, dt) => {
    const key = frameName(node.callFrame, options.byFile);
    self.set(key, (self.get(key) ?? 0) + dt);
    totalMs += dt;
  });
  const entries = [...self.entries()]
    .map(([name, selfMs]) => ({ name, selfMs, share: totalMs > 0 ? selfMs / totalMs : 0 }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs, entries };
}

export interface UnderEntry {
  /** The function named (matched by its function name). */
  name: string;
  /** Time of the samples whose stack holds it, and of all busy samples (not idle). */
  ms: number;
  busyMs: number;
  /** Self time of the functions those samples were in, largest first (share: of `ms`). */
  leaves: TopEntry[];
}

/** Inclusive time of each function named, and where it went (see --under). */
export function under(files: string[], names: string[], window?: ProfileWindow): UnderEntry[] {
  const ms = new Map<string, number>(names.map((n) => [n, 0]));
  const leaves = new Map<string, Map<string, number>>(names.map((n) => [n, new Map()]));
  let busyMs = 0;
  forEachSample(files, window, (node, dt, parentOf, byId) => {
    if (node.callFrame.functionName === '(idle)') return;
    busyMs += dt;
    const onStack = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) onStack.add(byId.get(id)!.callFrame.functionName);
    const leaf = frameName(node.callFrame);
    for (const name of names) {
      if (!onStack.has(name)) continue;
      ms.set(name, ms.get(name)! + dt);
      const m = leaves.get(name)!;
      m.set(leaf, (m.get(leaf) ?? 0) + dt);
    }
  });
  return names.map((name) => {
    const total = ms.get(name)!;
    const entries = [...leaves.get(name)!.entries()].map(([n, selfMs]) => ({ name: n, selfMs, share: total > 0 ? selfMs / total : 0 })).sort((a, b) => b.selfMs - a.selfMs);
    return { name, ms: total, busyMs, leaves: entries };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.on('error', () => process.exit(0)); // e.g. piped into head
  const args = process.argv.slice(2);
  let top = 25;
  let byFile = false;
  let whole = false;
  let windowFile: string | undefined;
  let underNames: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--top') top = Number(args[++i]);
    else if (a === '--by-file') byFile = true;
    else if (a === '--whole') whole = true;
    else if (a === '--window') windowFile = args[++i] ?? '';
    else if (a === '--under') underNames = (args[++i] ?? '').split(',').filter((n) => n !== '');
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node --import tsx bench/profile-top.ts [--top N] [--by-file] [--whole | --window FILE] [--under NAME[,NAME...]] PATH [...]\n');
      process.exit(0);
    } else files.push(a);
  }
  if (args.includes('--under') && underNames.length === 0) {
    process.stderr.write('profile-top: --under takes one or more function names, comma-separated\n');
    process.exit(1);
  }
  if (files.length === 0) {
    process.stderr.write('profile-top: name at least one .cpuprofile file or directory\n');
    process.exit(1);
  }
  if (!Number.isInteger(top) || top < 1) {
    process.stderr.write(`profile-top: --top must be a positive integer, got ${String(args[args.indexOf('--top') + 1])}\n`);
    process.exit(1);
  }
  for (const f of files) {
    if (!existsSync(f)) {
      process.stderr.write(`profile-top: ${f} does not exist (bench --profile DIR writes DIR/<run>/<process>/, e.g. DIR/cluster/replica-1)\n`);
      process.exit(1);
    }
  }
  let window = whole ? undefined : findWindow(files[0]!);
  if (windowFile !== undefined) {
    try {
      window = JSON.parse(readFileSync(windowFile, 'utf8')) as ProfileWindow;
      if (typeof window.startUs !== 'number' || typeof window.endUs !== 'number' || typeof window.requests !== 'number') throw new Error('not a window');
    } catch {
      process.stderr.write(`profile-top: --window ${windowFile} is not a window.json the bench wrote (DIR/<run>/window.json)\n`);
      process.exit(1);
    }
  }
  const found = profileFiles(files);
  const { totalMs, entries } = topSelf(found, { byFile, ...(window !== undefined ? { window } : {}) });
  const idle = entries.find((e) => e.name.startsWith('(idle)'))?.selfMs ?? 0;
  const perRequest = window !== undefined && window.requests > 0 ? window.requests : undefined;
  process.stdout.write(`${found.length} profile(s), ${(totalMs / 1000).toFixed(2)} s sampled, ${((totalMs - idle) / 1000).toFixed(2)} s not idle`);
  if (window !== undefined) {
    process.stdout.write(
      ` in the measured window of run ${window.run} (${((window.endUs - window.startUs) / 1e6).toFixed(1)} s, ${window.requests} requests` +
        (perRequest !== undefined ? `: ${((totalMs - idle) / perRequest).toFixed(3)} ms not idle per request` : '') +
        ')',
    );
  }
  process.stdout.write('\n');
  process.stdout.write(`${'self ms'.padStart(10)} ${'%'.padStart(6)} ${'% busy'.padStart(7)}${perRequest !== undefined ? ` ${'us/req'.padStart(7)}` : ''}  function\n`);
  for (const e of entries.slice(0, top)) {
    const isIdle = e.name.startsWith('(idle)');
    const busy = isIdle ? '' : `${((e.selfMs / Math.max(1, totalMs - idle)) * 100).toFixed(1)}`;
    const us = perRequest === undefined ? '' : ` ${(isIdle ? '' : ((e.selfMs * 1000) / perRequest).toFixed(0)).padStart(7)}`;
    process.stdout.write(`${e.selfMs.toFixed(0).padStart(10)} ${(e.share * 100).toFixed(1).padStart(6)} ${busy.padStart(7)}${us}  ${e.name}\n`);
  }
  for (const u of under(found, underNames, window)) {
    process.stdout.write(
      `\nunder ${u.name}: ${u.ms.toFixed(0)} ms = ${((u.ms / Math.max(1e-9, u.busyMs)) * 100).toFixed(1)}% of the busy samples` +
        (perRequest !== undefined ? `, ${((u.ms * 1000) / perRequest).toFixed(0)} us per request` : '') +
        '; the functions they were in:\n',
    );
    for (const e of u.leaves.slice(0, top)) process.stdout.write(`${e.selfMs.toFixed(0).padStart(10)} ${(e.share * 100).toFixed(1).padStart(6)}  ${e.name}\n`);
  }
}
