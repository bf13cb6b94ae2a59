/**
 * Top functions by self time of V8 CPU profiles (node --cpu-prof), e.g. from `npm run bench -- --profile DIR`.
 *
 *   node --import tsx bench/profile-top.ts [--top N] [--by-file] PATH [PATH ...]
 *
 * A PATH is a .cpuprofile file or a directory searched for them (e.g. DIR/cluster4/replica-0, or
 * DIR/cluster4 for every replica of that run); profiles of tsx's module-loader thread are skipped
 * in directories. Several profiles are summed. Self time of a function is the time samples spent in
 * it and not in its callees; "(garbage collector)", "(program)" and "(idle)" are V8's own buckets.
 * With --by-file, self time is grouped by source file instead.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
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

export function topSelf(files: string[], options: { byFile?: boolean } = {}): { totalMs: number; entries: TopEntry[] } {
  const self = new Map<string, number>();
  let totalMs = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
    // timeDeltas[i] is the time between sample i-1 and sample i: attribute it to sample i.
    for (let i = 0; i < profile.samples.length; i++) {
      const node = byId.get(profile.samples[i]!);
      const dt = (profile.timeDeltas[i] ?? 0) / 1000;
      if (node === undefined || dt <= 0) continue;
      const f = node.callFrame;
      const file = where(f.url);
      const key = options.byFile ? file || f.functionName || '(anonymous)' : `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
      self.set(key, (self.get(key) ?? 0) + dt);
      totalMs += dt;
    }
  }
  const entries = [...self.entries()]
    .map(([name, selfMs]) => ({ name, selfMs, share: totalMs > 0 ? selfMs / totalMs : 0 }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs, entries };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  let top = 25;
  let byFile = false;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--top') top = Number(args[++i]);
    else if (a === '--by-file') byFile = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node --import tsx bench/profile-top.ts [--top N] [--by-file] FILE.cpuprofile [...]\n');
      process.exit(0);
    } else files.push(a);
  }
  if (files.length === 0) {
    process.stderr.write('profile-top: name at least one .cpuprofile file or directory\n');
    process.exit(1);
  }
  const { totalMs, entries } = topSelf(profileFiles(files), { byFile });
  const idle = entries.find((e) => e.name.startsWith('(idle)'))?.selfMs ?? 0;
  process.stdout.write(`${profileFiles(files).length} profile(s), ${(totalMs / 1000).toFixed(2)} s sampled, ${((totalMs - idle) / 1000).toFixed(2)} s not idle\n`);
  process.stdout.write(`${'self ms'.padStart(10)} ${'%'.padStart(6)} ${'% busy'.padStart(7)}  function\n`);
  for (const e of entries.slice(0, top)) {
    const busy = e.name.startsWith('(idle)') ? '' : `${((e.selfMs / Math.max(1, totalMs - idle)) * 100).toFixed(1)}`;
    process.stdout.write(`${e.selfMs.toFixed(0).padStart(10)} ${(e.share * 100).toFixed(1).padStart(6)} ${busy.padStart(7)}  ${e.name}\n`);
  }
}
