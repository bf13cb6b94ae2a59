/**
 * Where the CPU of a bench run goes, counted by Linux perf over every thread and the kernel: the
 * replicas' and the client workers' samples, each put in one category by the function it was in
 * (and, in the kernel, by what it was doing). V8's CPU profiles (bench --profile, profile-top.ts)
 * see only a process's main thread and only its JavaScript, and they sample wall time: a function
 * that is preempted on a busy machine is charged for the time it waited for a core. perf's
 * cpu-clock samples are CPU time, so the shares here add up to the CPU the bench counts in /proc.
 *
 * `npm run bench -- --only cluster --perf DIR` records DIR/<run>/perf.data over each run's measured
 * window (`perf record -a -g`) with the run's process ids in DIR/<run>/pids.json, and prints this
 * split after the run; `node --import tsx bench/perf-split.ts DIR/<run>` prints it again (it runs
 * `perf script` on the recording). The bench starts replicas and client workers with
 * --perf-basic-prof then, so that their JavaScript frames have names (a category of their own), and
 * copies the maps V8 writes (/tmp/perf-<pid>.map) into DIR/<run>/maps/, where this script finds them
 * again. The categories depend on the native functions and on which code is JavaScript, not on the
 * JavaScript functions' names, which perf gets only approximately (V8 reuses the addresses of code
 * it frees, and the map keeps every function that was ever there).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const CATEGORIES = [
  'ed25519',
  'JavaScript',
  'V8 builtins',
  'GC',
  'V8 runtime',
  'V8 compiler',
  'ArrayBuffers',
  'malloc',
  'libc',
  'hashing',
  'RocksDB',
  'Node and libuv',
  'kernel: network',
  'kernel: scheduling',
  'kernel: disk',
  'kernel: memory',
  'kernel: other',
  'other',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** One frame of a sample's stack: the function (perf's symbol) and the object it is in (perf's dso). */
export interface Frame {
  sym: string;
  dso: string;
}

/** A kernel frame's category, if its name says: the first frame (from the leaf up) that says decides. */
function kernelCategory(sym: string): Category | undefined {
  if (/fsync|fdatasync|ext4|jbd2|xfs_|blk_|bio_|io_schedule|iowrite|virtblk|filemap|folio_wait|wait_on_page|submit_bio/.test(sym)) return 'kernel: disk';
  if (/tcp|sock|inet|^ip_|_ip_|skb|dev_queue_xmit|netif|net_rx|loopback|unix_stream/.test(sym)) return 'kernel: network';
  if (/page_fault|madvise|mmap|munmap|tlb|anonymous_page|clear_page|handle_mm_fault|mprotect|brk|pte|folio_alloc|alloc_pages/.test(sym)) return 'kernel: memory';
  if (/schedule|futex|epoll|wake_up|try_to_wake|finish_task_switch|pick_next|hrtimer|nanosleep|ttwu/.test(sym)) return 'kernel: scheduling';
  return undefined;
}

const MALLOC = new Set(['malloc', 'free', 'calloc', 'realloc', 'cfree', '_int_malloc', '_int_free', 'malloc_consolidate', '__libc_malloc', '__libc_free', '__libc_calloc', '__libc_realloc', 'posix_memalign', 'aligned_alloc']);

/** The category of one sample, from its stack (leaf first). */
export function categorize(stack: readonly Frame[]): Category {
  const leaf = stack[0];
  if (leaf === undefined) return 'other';
  const { sym, dso } = leaf;
  if (dso.includes('[kernel')) {
    let i = 0;
    for (; i < stack.length && stack[i]!.dso.includes('[kernel'); i++) {
      const c = kernelCategory(stack[i]!.sym);
      if (c !== undefined) return c;
    }
    // A system call's entry or exit (vfs_write, fdget_pos, ...): what the process called it for.
    for (const f of stack.slice(i, i + 6)) {
      if (/uv__read|uv__write|uv__try_write|uv__stream|LibuvStreamWrap|StreamBase/.test(f.sym)) return 'kernel: network';
      if (/fdatasync|fsync|pwrite|pread|rocksdb|uv__fs/.test(f.sym)) return 'kernel: disk';
      if (/epoll|futex|uv__io_poll|pthread_cond/.test(f.sym)) return 'kernel: scheduling';
    }
    return 'kernel: other';
  }
  // libsodium (sodium-native), or OpenSSL's ed25519 inside node (the node:crypto backend).
  if (dso.includes('sodium') || /ed25519|^fe51_|^fe_|^ge_|^x25519|^sc_(muladd|reduce)/.test(sym)) return 'ed25519';
  if (dso.includes('rocksdb') || dso.includes('.napi.') || sym.includes('rocksdb::')) return 'RocksDB';
  if (dso.includes('jemalloc') || MALLOC.has(sym)) return 'malloc';
  // node:crypto's hashes: the block functions and OpenSSL's setup around each call.
  if (/^sha(1|256|512)_block|^SHA(256|512)_|^ossl_sha|^EVP_|^evp_|^OPENSSL_/.test(sym)) return 'hashing';
  if (sym.startsWith('JS:') || dso.includes('perf-') || dso.startsWith('[JIT]')) return 'JavaScript';
  if (/Scaveng|Marking|Sweep|MarkCompact|Heap::|GCTracer|Evacuat|Compactor|RememberedSet|SlotSet|MinorMS|IncrementalMarking|Visitor|Heap(Object)?Iterat/.test(sym)) return 'GC';
  if (/BackingStore|ArrayBuffer|TypedArray/.test(sym)) return 'ArrayBuffers';
  if (sym.startsWith('Builtins_')) return 'V8 builtins';
  if (/v8::internal::(compiler|maglev|baseline|interpreter)::|Turbofan|Maglev|OptimizedCompilationJob/.test(sym)) return 'V8 compiler';
  if (sym.startsWith('v8::') || sym.startsWith('Runtime_')) return 'V8 runtime';
  if (sym.startsWith('node::') || sym.startsWith('uv_') || sym.startsWith('uv__') || sym.startsWith('napi_') || sym.startsWith('v8impl::')) return 'Node and libuv';
  if (dso.includes('libc.so') || dso.includes('libc-')) return 'libc';
  return 'other';
}

/** What the bench records beside perf.data: the run's process ids by kind, and its window. */
export interface PerfRun {
  run: string;
  /** Process id -> kind ('replicas', 'clients', 'server'). */
  kinds: Record<string, string>;
  requests: number;
  seconds: number;
  /** perf record's -F (samples per second per CPU while it runs). */
  frequency: number;
}

export interface KindSplit {
  kind: string;
  processes: number;
  samples: number;
  /** Samples on each process's main thread (its pid), the rest on its other threads. */
  mainThread: number;
  /** CPU seconds (samples / frequency). */
  cpuSeconds: number;
  categories: Partial<Record<Category, number>>;
}

export interface Split {
  run: string;
  requests: number;
  seconds: number;
  /** Samples in processes the run did not start (other work on the machine), and idle ones. */
  outsideSamples: number;
  idleSamples: number;
  totalSamples: number;
  kinds: KindSplit[];
}

/**
 * Reads `perf script -F comm,pid,tid,ip,sym,dso` text (a header line per sample, `comm pid/tid`,
 * then one indented line per frame, a blank line between samples) and adds each sample up.
 */
export async function splitPerfScript(lines: AsyncIterable<string> | Iterable<string>, run: PerfRun): Promise<Split> {
  const byKind = new Map<string, KindSplit>();
  const pidsOf = new Map<string, Set<string>>();
  let outside = 0;
  let idle = 0;
  let total = 0;
  let pid: string | undefined;
  let tid = '';
  let stack: Frame[] = [];
  const finish = (): void => {
    if (pid === undefined) return;
    total++;
    const kind = run.kinds[pid];
    if (kind === undefined) {
      if (pid === '0') idle++;
      else outside++;
    } else {
      let k = byKind.get(kind);
      if (k === undefined) {
        k = { kind, processes: 0, samples: 0, mainThread: 0, cpuSeconds: 0, categories: {} };
        byKind.set(kind, k);
        pidsOf.set(kind, new Set());
      }
      pidsOf.get(kind)!.add(pid);
      k.samples++;
      if (tid === pid) k.mainThread++;
      const c = categorize(stack);
      k.categories[c] = (k.categories[c] ?? 0) + 1;
    }
    pid = undefined;
    stack = [];
  };
  for await (const line of lines) {
    if (line.trim() === '') {
      finish();
      continue;
    }
    if (line[0] !== ' ' && line[0] !== '\t') {
      finish();
      // "comm pid/tid" (comm may hold spaces): the last field is pid/tid.
      const m = /(\d+)\/(\d+)\s*$/.exec(line) ?? /\s(\d+)\s+(\d+)\s*$/.exec(line);
      if (m === null) continue;
      pid = m[1]!;
      tid = m[2]!;
      continue;
    }
    if (pid === undefined) continue;
    const f = /^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(line);
    if (f === null) continue;
    stack.push({ sym: f[1]!.replace(/\+0x[0-9a-f]+$/, ''), dso: f[2]! });
  }
  finish();
  const kinds = [...byKind.values()].map((k) => ({ ...k, processes: pidsOf.get(k.kind)!.size, cpuSeconds: k.samples / run.frequency }));
  return { run: run.run, requests: run.requests, seconds: run.seconds, outsideSamples: outside, idleSamples: idle, totalSamples: total, kinds };
}

/** The split of a recording the bench wrote in `dir` (perf.data, pids.json, maps/): runs `perf script` on it. */
export async function splitRecording(dir: string): Promise<Split> {
  const pidsFile = join(dir, 'pids.json');
  const data = join(dir, 'perf.data');
  if (!existsSync(pidsFile) || !existsSync(data)) throw new Error(`${dir} holds no perf recording (pids.json and perf.data: bench --perf DIR writes DIR/<run>/)`);
  const run = JSON.parse(readFileSync(pidsFile, 'utf8')) as PerfRun;
  // perf script names JIT frames from /tmp/perf-<pid>.map; the bench keeps them in <dir>/maps/.
  const linked: string[] = [];
  for (const pid of Object.keys(run.kinds)) {
    const kept = join(dir, 'maps', `perf-${pid}.map`);
    const where = `/tmp/perf-${pid}.map`;
    if (existsSync(kept) && !existsSync(where)) {
      symlinkSync(resolve(kept), where);
      linked.push(where);
    }
  }
  try {
    return await scriptSplit(data, run);
  } finally {
    for (const l of linked) rmSync(l, { force: true });
  }
}

/** `perf script` on `data`, added up as it streams (its stderr is kept for the error). */
async function scriptSplit(data: string, run: PerfRun): Promise<Split> {
  const child = spawn('perf', ['script', '-i', data, '-F', 'comm,pid,tid,ip,sym,dso'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolveExit, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolveExit(code ?? 1));
  });
  const split = await splitPerfScript(createInterface({ input: child.stdout, crlfDelay: Infinity }), run);
  const code = await exited;
  if (code !== 0) throw new Error(`perf script exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return split;
}

/** The printed lines: per kind, CPU per request and its categories (each at least 0.5%), largest first. */
export function formatSplit(split: Split, indent = '  '): string[] {
  const out: string[] = [];
  for (const k of [...split.kinds].sort((a, b) => b.samples - a.samples)) {
    const perRequest = split.requests > 0 ? ` = ${((k.cpuSeconds * 1e6) / split.requests).toFixed(0)} us per request` : '';
    const parts = Object.entries(k.categories)
      .sort((a, b) => b[1] - a[1])
      .filter(([, n]) => n / k.samples >= 0.005)
      .map(([c, n]) => `${c} ${((100 * n) / k.samples).toFixed(1)}%`);
    out.push(
      `${indent}${split.run.padEnd(9)} ${k.kind} (${k.processes}): ${k.cpuSeconds.toFixed(2)} CPU s${perRequest}, ${((100 * k.mainThread) / k.samples).toFixed(0)}% on main threads; ${parts.join(', ')}`,
    );
  }
  const other = split.totalSamples > 0 ? (100 * split.outsideSamples) / split.totalSamples : 0;
  const idle = split.totalSamples > 0 ? (100 * split.idleSamples) / split.totalSamples : 0;
  out.push(`${indent}${split.run.padEnd(9)} of all samples: idle ${idle.toFixed(1)}%, other processes ${other.toFixed(1)}% (the kernel's threads, other work on the machine)`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.on('error', () => process.exit(0));
  const args = process.argv.slice(2);
  if (args.length !== 1 || args[0] === '--help' || args[0] === '-h') {
    process.stdout.write('usage: node --import tsx bench/perf-split.ts DIR/<run>   (a recording of npm run bench -- --perf DIR)\n');
    process.exit(args.length === 1 ? 0 : 1);
  }
  splitRecording(args[0]!).then(
    (split) => process.stdout.write(formatSplit(split).join('\n') + '\n'),
    (err: unknown) => {
      process.stderr.write(`perf-split: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
